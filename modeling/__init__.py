"""The NotewiseLSTM model, its samplers and guards, and the generation pipeline.

Importing this package registers the model with `AutoConfig`, `AutoModelForCausalLM` and
`AutoModelForSequenceClassification`, so checkpoints load
without `trust_remote_code` wherever toccata is installed, and the `"music-generation"` task with
`transformers.pipeline`.
"""

from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

from .configuration_notewise_lstm import NotewiseLSTMConfig
from .guards import GuardSettings
from .modeling_notewise_lstm import (
    NotewiseLSTMCache,
    NotewiseLSTMForCausalLM,
    NotewiseLSTMForSequenceClassification,
    NotewiseLSTMModel,
)
from .pipeline import (
    GeneratedPiece,
    GenerationCancelled,
    GenerationRequest,
    MusicGenerationPipeline,
    compose,
    register_pipeline,
)
from .presets import default_generation_config, generate_kwargs
from .sampling import SAMPLERS, SamplerSettings

AutoConfig.register(NotewiseLSTMConfig.model_type, NotewiseLSTMConfig, exist_ok=True)
AutoModelForCausalLM.register(NotewiseLSTMConfig, NotewiseLSTMForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(NotewiseLSTMConfig, NotewiseLSTMForSequenceClassification, exist_ok=True)
register_pipeline()

__all__ = [
    "SAMPLERS",
    "GeneratedPiece",
    "GenerationCancelled",
    "GenerationRequest",
    "GuardSettings",
    "MusicGenerationPipeline",
    "NotewiseLSTMCache",
    "NotewiseLSTMConfig",
    "NotewiseLSTMForCausalLM",
    "NotewiseLSTMForSequenceClassification",
    "NotewiseLSTMModel",
    "SamplerSettings",
    "compose",
    "default_generation_config",
    "generate_kwargs",
]
