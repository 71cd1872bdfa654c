"""budgetnas: the most accurate neural network for a budget (parameters, MACs or latency)."""
__version__ = "0.1.0"

from .arch import Arch, build_model, load_arch, save_arch  # noqa: E402
from .cost import profile  # noqa: E402

__all__ = ["Arch", "build_model", "load_arch", "save_arch", "profile", "__version__"]
