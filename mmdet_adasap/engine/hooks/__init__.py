from .adasap_hook import PHASES, AdaSAPHook

__all__ = ['AdaSAPHook', 'PHASES']
