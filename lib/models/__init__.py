"""Models: open_clip loading and encoding, the demo models' pretraining, what fine-tuning trains.

``load_model(name, pretrained, device)`` returns a ``ModelHandle``; ``encoding`` turns pixels and
texts into normalised features, tokens and attention maps; ``tuning`` and ``prompt_learning`` choose
the trainable parameters (LayerNorm, LoRA, LoKr, full; CoOp context).
"""
from lib.models import architectures, encoding, loading, parts_pretrain, pretrain, prompt_learning, tuning
from lib.models.architectures import CONFIG_DIR, DEMO_MODEL, PARTS_MODEL
from lib.models.encoding import (
                                 attention_maps,
                                 encode_dataset,
                                 encode_images,
                                 encode_texts,
                                 encoder_tokens,
                                 image_tokens,
                                 tensor_tail,
)
from lib.models.loading import ModelHandle, ModelLoadError, load_model
