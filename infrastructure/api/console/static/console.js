// execledger console: command forms post JSON with the session's CSRF token; data-live parts refresh in place.
// No framework, no build step. Served from /console/static/ (the page's CSP allows scripts from 'self' only).
(function () {
  "use strict";
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (e) {
      data = { error: "HTTP " + response.status };
    }
    return [response.status, data];
  }

  function flash(text, ok) {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = text;
    box.className = ok ? "ok" : "refused";
  }

  function describe(status, data) {
    if (status === 200) {
      return data.command + " " + data.outcome + (data.applied_by ? " by " + data.applied_by : "") +
        (data.mode ? ": mode=" + data.mode : "");
    }
    if (status === 202) return data.command + " recorded: " + (data.note || "not confirmed yet");
    const errors = (data.errors || []).map(function (e) { return e.field + ": " + e.message; }).join("; ");
    return "refused (HTTP " + status + "): " + (data.error || "") + (errors ? " [" + errors + "]" : "");
  }

  document.addEventListener("submit", async function (event) {
    const form = event.target;
    if (form.id === "login") {
      event.preventDefault();
      const [status, data] = await postJson("/console/login", {
        token: form.elements.token.value,
        next: form.dataset.next,
      });
      if (status === 200) {
        window.location.assign(data.next);
      } else {
        document.getElementById("login-error").textContent = data.error || "HTTP " + status;
      }
      return;
    }
    if (!form.hasAttribute("data-command")) return;
    event.preventDefault();
    const button = event.submitter || form.querySelector("button[data-action]");
    const fields = (button.dataset.fields || "reason").split(",");
    const body = { by: "console" };
    for (const name of fields) {
      const input = form.elements[name];
      if (!input) continue;
      if (input.type === "checkbox") {
        if (input.checked) body[name] = true;
      } else {
        body[name] = input.value;
      }
    }
    button.disabled = true;
    try {
      const [status, data] = await postJson(button.dataset.action, body);
      flash(describe(status, data), status < 300);
      if (status < 300) form.reset();
    } catch (e) {
      flash("not sent: " + e, false);
    } finally {
      button.disabled = false;
    }
    refresh();
  });

  document.addEventListener("click", async function (event) {
    if (event.target.id !== "logout") return;
    const [, data] = await postJson("/console/logout", {});
    window.location.assign(data.next || "/console/login");
  });

  let busy = false;
  async function refresh() {
    if (busy || !document.querySelector("[data-live]")) return;
    busy = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { "X-Console-Version": document.body.dataset.version || "" },
      });
      if (response.redirected && response.url.indexOf("/console/login") >= 0) {
        window.location.assign(response.url);
        return;
      }
      document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
      if (response.status === 204) return; // nothing changed since this page was made
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      let skipped = false;
      for (const part of document.querySelectorAll("[data-live]")) {
        const active = document.activeElement;
        if (active && active !== document.body && part.contains(active)) {
          skipped = true; // never under the cursor: this part is taken at a later poll
          continue;
        }
        const next = fresh.getElementById(part.id);
        if (next && next.innerHTML !== part.innerHTML) part.innerHTML = next.innerHTML;
      }
      if (!skipped) document.body.dataset.version = fresh.body.dataset.version || "";
    } catch (e) {
      document.body.dataset.offline = String(e);
    } finally {
      busy = false;
    }
  }

  const every = Number(document.body.dataset.pollMs || 0);
  if (every > 0) {
    setInterval(function () {
      const live = document.getElementById("live-toggle");
      if (!document.hidden && (!live || live.checked)) refresh();
    }, every);
  }
})();
