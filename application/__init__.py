"""Use cases and process managers. Depends on ``domain`` and on the ports (Protocols) it defines."""
