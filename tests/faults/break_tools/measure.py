import asyncio, sys, pathlib, tempfile
from tests.faults.bursts import measure
d = pathlib.Path(tempfile.mkdtemp(prefix="measure-", dir="/work/wt-break/break-out"))
asyncio.run(measure(int(sys.argv[1]), sys.argv[2], d, int(sys.argv[3])))
