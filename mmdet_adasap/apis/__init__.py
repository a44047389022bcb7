from .cli import add_common_args, parse_common
from .config import find_resize_shape, load_config

__all__ = ['add_common_args', 'find_resize_shape', 'load_config', 'parse_common']
