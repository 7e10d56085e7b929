"""One table of the zoo: every model's name, default data, default config and expected result.

The CLI (``zoo list``, ``zoo train NAME``), the notebooks and the benchmarks all read this
table, so a standard model is added in one place (its ``zoo/`` file holds the config factory
``config_for`` and the ``INPUTS`` it reads)::

    register(ModelSpec(name='mlp', module=mlp, config=partial(mlp.config_for, hidden=(100, 100)),
                       dataset='mnist1d', task='classification', optimizer='adamw', lr=1e-2,
                       weight_decay=0.3, schedule='step', batch_size=100, epochs=100,
                       expected={'mnist1d': '71.7 +- 0.1% test accuracy (seeds 0-2)'}))

``config`` is either a model ``Config`` or a function ``DataInfo -> Config``: the latter lets
``zoo train NAME --dataset OTHER`` size the model for another dataset (input shape, number of
classes). Models whose training is not "minimize ``module.loss`` with one optimizer" (GANs,
translation, word vectors, stateful language models, transfer learning) name a *driver* by a
short name (``driver='gan'``): the ``train.drivers`` module that trains, evaluates and samples
them. ``zoo/`` never imports ``train/``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from functools import partial
from types import MappingProxyType, ModuleType
from typing import Any

from zoo import (
    adding,
    autoencoder,
    char_lm,
    cnn,
    gan,
    linear,
    logistic,
    mlp,
    perceptron,
    reber,
    seq2seq,
    seq_classifier,
    transfer,
    word2vec,
)
from zoo.data_info import DataInfo

NO_RESULT = "no measured result for this dataset"
DRIVERS = ("standard", "gan", "translation", "embeddings", "char_lm", "transfer")

__all__ = ["DataInfo", "ModelSpec", "TASKS", "DRIVERS", "NO_RESULT", "register", "get",
           "names", "specs"]

TASKS = ("classification", "regression", "reconstruction", "generation", "sequence",
         "translation", "embedding")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One zoo entry.

    Attributes:
        name: the CLI name (lowercase, hyphens).
        module: the model's module (with ``init``, ``apply``, ``loss``, optional
            ``init_state``, ``config_for`` and ``INPUTS``).
        config: the model's ``Config`` or a factory ``DataInfo -> Config`` (usually
            ``partial(module.config_for, ...)``).
        dataset: default dataset name (``train.datasets.load``).
        dataset_options: options for that dataset's loader.
        task: one of :data:`TASKS`; 'classification' runs report ``test_accuracy``.
        optimizer: default optimizer name (``train.optimizers.OPTIMIZERS``: sgd, momentum,
            adam, ...).
        lr: default learning rate (the peak of the schedule).
        schedule: default learning-rate schedule over the run, by name
            (``train.optimizers.SCHEDULES``): 'constant', 'cosine' (cosine decay to 0) or
            'step' (``lr / 10`` for the last fifth of the steps).
        weight_decay: default decoupled weight decay for optimizers that take one (adamw,
            lamb, adadelta); None keeps the optimizer's own default. Dropped when another
            optimizer is chosen on the command line.
        batch_size: default batch size; None means full-batch gradient descent.
        epochs: default number of epochs.
        expected: the results the defaults reach, measured, by dataset name (``{'mnist1d':
            '71.7 +- 0.1% test accuracy (seeds 0-2)'}``); a plain string is the result on the
            default dataset. :meth:`expected_for` reads it.
        description: one line on what the entry is.
        driver: the ``train.drivers`` driver that trains, evaluates and samples the entry, by
            short name (:data:`DRIVERS`; ``'standard'``: minimize ``module.loss`` with one
            optimizer through ``train.loop.fit``).
        standin: a generated dataset (``train.datasets``) that ``zoo train NAME`` uses, with
            the same options, when ``dataset`` is a real one whose files are absent: no
            ``--dataset``, no ``path`` data option, and nothing in the dataset's cache folder
            (``train.drivers.data.choose_dataset``). None: always ``dataset``.
        extra: free-form options: ``'sampling'`` (True, False or 'replacement') is passed
            to ``train.loop.fit`` as ``shuffle``; ``'fast_path'`` ('scan', 'loop' or 'auto',
            default) is passed to ``train.loop.fit`` ('scan': each epoch one compiled
            ``lax.scan``; 'loop': one jitted call per step; 'auto' times both); drivers read
            their own.
    """

    name: str
    module: ModuleType
    config: Any
    dataset: str
    dataset_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    task: str = "classification"
    optimizer: str = "adam"
    lr: float = 1e-3
    schedule: str = "constant"
    weight_decay: float | None = None
    batch_size: int | None = 128
    epochs: int = 10
    expected: str | Mapping[str, str] = ""
    description: str = ""
    driver: str = "standard"
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    standin: str | None = None

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"ModelSpec {self.name!r}: task must be one of {TASKS}, "
                             f"got {self.task!r}")
        if not isinstance(self.driver, str) or not self.driver:
            raise ValueError(f"ModelSpec {self.name!r}: driver must be a driver's name, "
                             f"got {self.driver!r}")
        for field in ("init", "apply", "loss"):
            if self.driver == "standard" and not hasattr(self.module, field):
                raise ValueError(f"ModelSpec {self.name!r}: module {self.module.__name__} has "
                                 f"no {field}()")
        expected = self.expected
        if isinstance(expected, str):
            expected = {self.dataset: expected} if expected else {}
        object.__setattr__(self, "expected", MappingProxyType(dict(expected)))
        object.__setattr__(self, "dataset_options", MappingProxyType(dict(self.dataset_options)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def expected_for(self, dataset: str | None = None) -> str:
        """The measured result of the defaults on ``dataset`` (default: the entry's own), or
        ``'no measured result for this dataset'``."""
        return self.expected.get(self.dataset if dataset is None else dataset, NO_RESULT)

    def make_config(self, info: DataInfo | None = None):
        """The model config for a dataset: ``config(info)`` if ``config`` is a factory."""
        if callable(self.config) and not dataclasses.is_dataclass(self.config):
            if info is None:
                raise ValueError(f"ModelSpec {self.name!r}: its config depends on the data; "
                                 "pass a DataInfo")
            return self.config(info)
        return self.config


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to the table (``replace=True`` to overwrite an entry of the same name)."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"register: expected a ModelSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"register: a model named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def names() -> list[str]:
    """Registered model names, in registration order."""
    return list(_REGISTRY)


def specs() -> list[ModelSpec]:
    """Registered specs, in registration order."""
    return list(_REGISTRY.values())


def get(name: str) -> ModelSpec:
    """The spec registered as ``name``.

    Raises:
        ValueError: for an unknown name, listing the closest registered names.
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(_REGISTRY)}")


# --------------------------------------------------------------------------------------------
# The feed-forward zoo. Defaults were chosen (and the expected results measured) on the
# project's 2-core CPU (benchmarks/bench_mnist1d.py). MNIST-1D settings start from the MNIST-1D
# paper's (Adam 1e-2, batch 100, 6000 steps = 150 epochs of its 4000 training examples). The
# MLP and CNN fit the training set perfectly long before the end of that run (train loss ~0
# by epoch ~45), and which interpolating solution they stop at decides the test accuracy, with
# a wide spread over seeds. The MLPs and CNNs below therefore train with AdamW (decoupled
# weight decay, which keeps pulling towards smaller weights after the fit is perfect) at a
# constant rate, then a step decay (lr / 10 for the last fifth of the steps) to settle the
# noisy high-rate phase. A cosine decay over the whole run did worse for the CNN (93.6% vs
# 94.9% over seeds 3-12): the long high-rate phase is what helps. Logistic regression, a convex
# problem, does best with plain Adam and a cosine decay (33.0% vs 32.7% with the step decay and
# 31.9% at a constant rate, seeds 3-12).


_ENTRIES = [
    ModelSpec(
        name="perceptron", module=perceptron, dataset="and", task="classification",
        config=perceptron.config_for,
        optimizer="sgd", lr=0.1, batch_size=None, epochs=100,
        expected={"and": "100 +- 0% test accuracy (seeds 0-2)",
                  "or": "100 +- 0% test accuracy (seeds 0-2)",
                  "xor": "50 +- 0% test accuracy (seeds 0-2): not linearly separable"},
        description="step unit + perceptron rule (seed 004 s2)"),
    ModelSpec(
        name="linear", module=linear, dataset="linear", task="regression",
        config=linear.config_for,
        optimizer="sgd", lr=0.1, batch_size=None, epochs=300,
        expected="test mse 0.0084 +- 0 (seeds 0-2; noise variance 0.01)",
        description="linear unit by gradient descent (seed 003 s1)"),
    ModelSpec(
        name="logistic", module=logistic, dataset="mnist1d", task="classification",
        config=logistic.config_for,
        optimizer="adam", lr=1e-2, schedule="cosine", batch_size=100, epochs=150,
        expected="33.3 +- 0.1% test accuracy (seeds 0-2; paper: 32%)", extra={"fast_path": "scan"},
        description="softmax regression, the MNIST-1D linear baseline"),
    ModelSpec(
        name="logistic-binary", module=logistic, dataset="separable", task="classification",
        config=partial(logistic.config_for, n_out=1),
        optimizer="adam", lr=0.1, batch_size=None, epochs=200,
        expected="100 +- 0% test accuracy (seeds 0-2)",
        description="single sigmoid unit (seed 004 s3)"),
    ModelSpec(
        name="mlp", module=mlp, dataset="mnist1d", task="classification",
        config=partial(mlp.config_for, hidden=(100, 100)),
        optimizer="adamw", lr=1e-2, weight_decay=0.3, schedule="step", batch_size=100,
        epochs=100, expected="71.7 +- 0.1% test accuracy (seeds 0-2; paper: 68%)",
        extra={"fast_path": "scan"},
        description="40-100-100-10 ReLU MLP"),
    ModelSpec(
        name="mlp-digits", module=mlp, dataset="digits", task="classification",
        config=partial(mlp.config_for, hidden=(256,)),
        optimizer="adamw", lr=1e-3, weight_decay=0.3, schedule="step", batch_size=32,
        epochs=60, expected="97.4 +- 0.1% test accuracy (seeds 0-2)",
        description="64-256-10 ReLU MLP on 8x8 digits"),
    ModelSpec(
        name="mlp-regression", module=mlp, dataset="diabetes", task="regression",
        config=partial(mlp.config_for, hidden=(32,), activation="tanh", w_init="notes_tanh",
                       task="regression"),
        optimizer="adam", lr=1e-3, batch_size=32, epochs=100,
        expected="test mse 0.49 +- 0.01 (seeds 0-2; standardized, mean guess ~1)",
        description="MLP regressor (bike-sharing style) on diabetes"),
    ModelSpec(
        name="cnn", module=cnn, dataset="mnist1d", task="classification",
        config=cnn.config_for, optimizer="adamw", lr=1e-2, weight_decay=0.05, schedule="step",
        batch_size=100, epochs=150, expected="95.0 +- 0.0% test accuracy (seeds 0-2; paper: 94%)",
        extra={"fast_path": "scan", "sampling": "replacement"},
        description="MNIST-1D paper's 1-D CNN, 5,210 params"),
    ModelSpec(
        name="cnn-digits", module=cnn, dataset="digits", task="classification",
        config=cnn.config_for, optimizer="adamw", lr=3e-3, weight_decay=0.05, schedule="step",
        batch_size=32, epochs=60, expected="98.1 +- 0.2% test accuracy (seeds 0-2)",
        extra={"fast_path": "loop"},
        description="LeNet-style 2-D CNN on 8x8 digits"),
    ModelSpec(
        name="autoencoder", module=autoencoder, dataset="digits", task="reconstruction",
        config=autoencoder.config_for,
        optimizer="adam", lr=1e-2, batch_size=64, epochs=40,
        expected="test pixel mse 0.013 +- 0.002 (seeds 0-2; mean image: 0.074)",
        extra={"fast_path": "loop"},
        description="conv autoencoder, transposed-conv decoder"),
    ModelSpec(
        name="denoising-autoencoder", module=autoencoder, dataset="digits",
        task="reconstruction",
        config=partial(autoencoder.config_for, noise_std=0.3),
        optimizer="adam", lr=1e-2, batch_size=64, epochs=40,
        expected="test pixel mse 0.029 +- 0.0003 (seeds 0-2; noisy input: 0.052)",
        extra={"fast_path": "loop"},
        description="the same, trained to remove Gaussian noise"),
    ModelSpec(
        name="transfer", module=transfer, dataset="digits", task="classification",
        config=transfer.Config(), optimizer="adam", lr=1e-3, batch_size=32, epochs=15,
        expected=("5-9 from 10 images/class (seeds 0-2): frozen 0-4 features 91.6 +- 5.1%, "
                  "from scratch 93.1 +- 3.8%"),
        description="CNN on digits 0-4 -> frozen features, new head on 5-9",
        driver="transfer",
        extra={"source_classes": (0, 1, 2, 3, 4), "target_classes": (5, 6, 7, 8, 9),
               "shots": 10, "finetune_epochs": 300, "fast_path": "loop"}),
]

for _spec in _ENTRIES:
    register(_spec)


# --- generative adversarial networks (zoo/gan.py; trained by train/gan.py's two-player loop)

for _name, _dataset, _lr, _batch, _epochs, _expected, _description in [
    ("gan", "gaussian_ring", 5e-4, 256, 100,
     "8 +- 0 of 8 modes covered, 94.4 +- 0.6% high quality (seeds 0-2)",
     "MLP GAN on a ring of 8 Gaussians (Goodfellow et al. 2014)"),
    ("dcgan", "digits", 2e-4, 64, 300,
     "Frechet distance of random features 0.0061 +- 0.0003 (seeds 0-2; training images: "
     "0.0057)",
     "DCGAN on the 8x8 digits (Radford et al. 2016)"),
]:
    register(ModelSpec(
        name=_name, module=gan, config=gan.config_for, dataset=_dataset, task="generation",
        optimizer="adam", lr=_lr, batch_size=_batch, epochs=_epochs, expected=_expected,
        description=_description, driver="gan"))


# --------------------------------------------------------------------------------------------
# Translation and word embeddings (issue 8). Vocabulary sizes come from the dataset
# (train.drivers.translation / train.drivers.embeddings), so --dataset parallel / text8 work
# with the same entries. Expected results measured by benchmarks/measure_expected.py (seeds
# 0-2 of these defaults).

_SEQ2SEQ = dict(dataset="dates", task="translation", optimizer="adam", lr=3e-3, batch_size=128,
                driver="translation", extra={"fast_path": "scan"})
_WORD2VEC = dict(dataset="word_corpus", task="embedding", optimizer="adam", lr=3e-3,
                 batch_size=256, driver="embeddings")

_TRANSLATION_ENTRIES = [
    ModelSpec(
        name="seq2seq", module=seq2seq, epochs=8,
        config=seq2seq.Config(cell="gru", attention=None, embed_dim=32, hidden=64),
        expected="90.7 +- 1.9% held-out exact match, BLEU 97.7 +- 0.4 (seeds 0-2)",
        description="GRU encoder-decoder, no attention (Cho et al. 2014)", **_SEQ2SEQ),
    ModelSpec(
        name="seq2seq-attention", module=seq2seq, epochs=8,
        config=seq2seq.Config(cell="gru", attention="bahdanau", embed_dim=32, hidden=64),
        expected="99.6 +- 0.5% held-out exact match, BLEU 99.9 +- 0.2 (seeds 0-2)",
        description="bidirectional GRU + additive attention (Bahdanau et al. 2015)", **_SEQ2SEQ),
    ModelSpec(
        name="seq2seq-luong", module=seq2seq, epochs=8,
        config=seq2seq.Config(cell="lstm", attention="luong", embed_dim=32, hidden=64),
        expected="96.9 +- 4.3% held-out exact match, BLEU 99.2 +- 1.1 (seeds 0-2)",
        description="bidirectional LSTM + multiplicative attention (Luong et al. 2015)",
        **_SEQ2SEQ),
    ModelSpec(
        name="word2vec", module=word2vec, epochs=3,
        config=word2vec.Config(mode="skipgram", dim=32, n_negative=5, window=3),
        expected="analogies 100 +- 0%, 5-NN class purity 1.0 +- 0 (seeds 0-2)",
        description="skip-gram with negative sampling (Mikolov et al. 2013)", **_WORD2VEC),
    ModelSpec(
        name="word2vec-cbow", module=word2vec, epochs=3,
        config=word2vec.Config(mode="cbow", dim=32, n_negative=5, window=3),
        expected="analogies 99.8 +- 0.3%, 5-NN class purity 0.998 +- 0.003 (seeds 0-2)",
        description="CBOW with negative sampling (Mikolov et al. 2013)", **_WORD2VEC),
]

for _spec in _TRANSLATION_ENTRIES:
    register(_spec)


# --------------------------------------------------------------------------------------------
# The recurrent zoo (issue 7). Expected results measured on the project's 2-core CPU with
# benchmarks/measure_expected.py (seeds 0-2). The char-lm entries train with stateful truncated BPTT
# (batch c+1 continues batch c), which the standard shuffled ``zoo train`` cannot do, so they
# name their own driver (``train.drivers.char_lm``).


def _char_lm_config(cell: str):
    return partial(char_lm.config_for, cell=cell, embed_dim=32, hidden=128, streams=32, chunk=64)


_RECURRENT_ENTRIES = [
    ModelSpec(
        name="char-lm", module=char_lm, dataset="tv_script", task="generation",
        config=_char_lm_config("lstm"), optimizer="adam", lr=3e-3, batch_size=32, epochs=10,
        expected="test 0.469 +- 0.001 bits/char vs entropy floor 0.442 (+6.3%; seeds 0-2)",
        description="char-level LSTM LM (TV script), stateful truncated BPTT, sampling",
        extra={"clip_norm": 5.0, "fast_path": "scan"}, driver="char_lm"),
    ModelSpec(
        name="char-lm-gru", module=char_lm, dataset="tv_script", task="generation",
        config=_char_lm_config("gru"), optimizer="adam", lr=3e-3, batch_size=32, epochs=10,
        expected="test 0.471 +- 0.0005 bits/char vs entropy floor 0.442 (+6.7%; seeds 0-2)",
        description="the same with a GRU",
        extra={"clip_norm": 5.0, "fast_path": "scan"}, driver="char_lm"),
    ModelSpec(
        name="char-lm-rnn", module=char_lm, dataset="tv_script", task="generation",
        config=_char_lm_config("rnn"), optimizer="adam", lr=3e-3, batch_size=32, epochs=10,
        expected="test 0.474 +- 0.002 bits/char vs entropy floor 0.442 (+7.3%; seeds 0-2)",
        description="the same with a vanilla tanh RNN",
        extra={"clip_norm": 5.0, "fast_path": "scan"}, driver="char_lm"),
    ModelSpec(
        name="gru-mnist1d", module=seq_classifier, dataset="mnist1d", task="classification",
        config=partial(seq_classifier.config_for, hidden=64, cell="gru"),
        optimizer="adam", lr=3e-3, batch_size=100, epochs=40,
        expected="94.8 +- 0.8% test accuracy (seeds 0-2; paper: 91%)", extra={"fast_path": "scan"},
        description="GRU reading the 40 samples one by one, dense on the final state"),
    ModelSpec(
        name="adding-lstm", module=adding, dataset="adding", dataset_options={"T": 100},
        task="regression", config=adding.Config(hidden=32, cell="lstm"),
        optimizer="adam", lr=3e-3, batch_size=32, epochs=6,
        expected=("99.9 +- 0.1% of test sums solved (|err| < 0.04), mse 1.1e-4 +- 0.1e-4 "
                  "(seeds 0-2; Var(y) = 0.04)"),
        extra={"fast_path": "scan"},
        description="adding problem T=100 (Hochreiter & Schmidhuber 1997, exp. 4), LSTM"),
    ModelSpec(
        name="adding-rnn", module=adding, dataset="adding", dataset_options={"T": 100},
        task="regression", config=adding.Config(hidden=32, cell="rnn"),
        optimizer="adam", lr=3e-3, batch_size=32, epochs=6,
        expected=("stays at the constant baseline: 14.2 +- 0.1% solved, mse 0.0373 +- 0.0000 "
                  "(seeds 0-2; Var(y) = 0.04)"),
        extra={"fast_path": "scan"},
        description="the same with a vanilla tanh RNN of the same size"),
    ModelSpec(
        name="reber-lstm", module=reber, dataset="reber", task="sequence",
        config=partial(reber.config_for, hidden=16, cell="lstm"),
        optimizer="adam", lr=1e-2, batch_size=16, epochs=10,
        expected=("every legal next symbol on 77 +- 22% of test strings (seeds 0-2: 84%, 47%, "
                  "100%)"),
        extra={"fast_path": "scan"},
        description="embedded Reber next-symbol predictor (1997, exp. 1), LSTM"),
    ModelSpec(
        name="reber-rnn", module=reber, dataset="reber", task="sequence",
        config=partial(reber.config_for, hidden=16, cell="rnn"),
        optimizer="adam", lr=1e-2, batch_size=16, epochs=10,
        expected=("every legal next symbol on 76 +- 34% of test strings (seeds 0-2: 27%, 100%, "
                  "100%)"),
        extra={"fast_path": "scan"},
        description="the same with a vanilla tanh RNN"),
]

for _spec in _RECURRENT_ENTRIES:
    register(_spec)


# --------------------------------------------------------------------------------------------
# The course's five projects (seed 001; docs/projects.md). Each names the real dataset of the
# project and a generated stand-in that ``zoo train NAME`` uses when the real files are
# absent (``ModelSpec.standin``); the expected results are measured on the stand-ins. The
# fourth project, translation, is the seq2seq entries above (``--dataset parallel``).

_PROJECT_ENTRIES = [
    ModelSpec(
        name="bike-sharing", module=mlp, dataset="bike_sharing", task="regression",
        standin="bike_sharing_synthetic",
        config=partial(mlp.config_for, hidden=(16,), activation="sigmoid",
                       w_init="lecun_normal", task="regression"),
        optimizer="sgd", lr=0.25, schedule="step", batch_size=128, epochs=80,
        expected={"bike_sharing_synthetic": "test mse 0.0146 +- 0.0008, validation 0.027 +- "
                                             "0.002 (standardized counts; seeds 0-2)"},
        extra={"fast_path": "scan"},
        description="project 1: 56-16-1 sigmoid MLP, linear output, SGD (seed 001)"),
    ModelSpec(
        name="cnn-cifar10", module=cnn, dataset="cifar10", task="classification",
        standin="shapes", config=partial(cnn.config_for, preset="cifar10"),
        optimizer="adam", lr=1e-3, batch_size=64, epochs=15,
        expected={"shapes": "92.2 +- 0.3% test accuracy (seeds 0-2)"},
        extra={"fast_path": "scan"},
        description="project 2: VGG-style CNN for 32x32x3 images (CIFAR-10)"),
    ModelSpec(
        name="word-lm", module=char_lm, dataset="text", dataset_options={"level": "word"},
        task="generation", standin="tv_script",
        config=partial(char_lm.config_for, cell="lstm", embed_dim=64, hidden=128, streams=32,
                       chunk=32),
        optimizer="adam", lr=3e-3, batch_size=32, epochs=20,
        expected={"tv_script": "test 1.645 +- 0.006 bits/word vs entropy floor 1.545 (+6.5%; "
                                "seeds 0-2)"}, driver="char_lm",
        extra={"clip_norm": 5.0, "fast_path": "scan"},
        description="project 3: word-level LSTM LM (TV scripts), embedding, sampling"),
    ModelSpec(
        name="dcgan-faces", module=gan, dataset="image_folder",
        dataset_options={"size": [16, 16]}, task="generation", standin="synthetic_faces",
        config=partial(gan.config_for, base_channels=64),
        optimizer="adam", lr=2e-4, batch_size=64, epochs=60,
        expected={"synthetic_faces": "Frechet distance of random features 0.030 +- 0.004 "
                                      "(seeds 0-2; training images: 0.012)"}, driver="gan",
        description="project 5: DCGAN for faces, 16x16 (the course: 32x32 CelebA crops)"),
]

for _spec in _PROJECT_ENTRIES:
    register(_spec)
