from .cli import ToolParser, add_common_args, parse_common, run_tool
from .cost import interleaved_latency, out_channels_kept, params_and_flops
from .config import find_resize_shape, input_size_of, load_config, trace_shape
from .model import (build_detector, check_checkpoint_fits, fill_channels, is_pruned_aware, load_detector_checkpoint,
                    read_checkpoint, strip_pretrained)

__all__ = ['ToolParser', 'add_common_args', 'build_detector', 'check_checkpoint_fits', 'fill_channels',
           'find_resize_shape', 'input_size_of', 'interleaved_latency', 'is_pruned_aware', 'load_config',
           'load_detector_checkpoint', 'out_channels_kept', 'params_and_flops', 'parse_common', 'read_checkpoint',
           'run_tool', 'strip_pretrained', 'trace_shape']
