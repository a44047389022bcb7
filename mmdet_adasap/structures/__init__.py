from .neuron_groups import NeuronGroup, ParamSlice

__all__ = ['NeuronGroup', 'ParamSlice']
