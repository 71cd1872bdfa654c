"""Architecture drawings for the report: each space draws its own (`Space.draw`)."""
from __future__ import annotations

from ..drawing import dot_available  # noqa: F401  (the page says which drawer it used)
from ..errors import UserError


def draw_arch(arch: dict, *, use_dot: bool | None = None) -> tuple[list[tuple[str, bytes]], list[str]]:
    """Drawings for an arch.json object; an unknown or unreadable architecture gives a note."""
    from ..spaces import get_space

    space = arch.get("space")
    try:
        return get_space(str(space)).draw(arch, use_dot=use_dot)
    except UserError:
        return [], [f"no drawing for space {space!r}"]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # A hand-edited or half-written genotype must not cost the user the rest of the page.
        return [], [f"the {space} architecture could not be drawn ({type(exc).__name__}: {exc})"]
