from . import options
