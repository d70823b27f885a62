"""HTTP simulators of Toggl Track and Exist, with fault injection, for tests and the demo.

They are real ASGI applications that run standalone (`timebridge fakes toggl|exist`) or in a
background thread of a test (`serve_in_thread`). They follow `shared/reference/`: where the
reference says the real API does X, the simulator does X.
"""

from timebridge.fakes.faults import Fault, FaultPlan
from timebridge.fakes.server import RunningServer, serve_in_thread

__all__ = ["Fault", "FaultPlan", "RunningServer", "serve_in_thread"]
