from .cli import add_common_args, parse_common
from .config import load_config

__all__ = ['add_common_args', 'load_config', 'parse_common']
