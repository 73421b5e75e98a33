"""Class names of the zoo models' datasets, for people reading results.

Agents summarise a classifier's output as ``class 72 (score 1464)``; :func:`label_summary`
names the class when the model's dataset defines names: ``class 72 "seal" (score 1464)``.
Pure data and string work, no imports beyond the standard library.

- MNIST (``convnet5``): the digits 0-9.
- KWS20 v3 (``kws20_v3``): the 20 keywords of ai8x-training's KWS20 dataset in its class
  order, then ``unknown``.
- CIFAR-100 (``simplenet``, ``ressimplenet``, ``widenet``, ``efficientnetv2``,
  ``mobilenetv2_075`` and the ``_nodw`` variants): the 100 fine labels in the dataset's order.
- CamVid (``unet``, ai8x-training's ``CamVid_s352_c3``): Building, Sky, Tree, and every other
  class folded into the fourth.

The zoo's weights are random, not trained (docs/models.md): the names say which class won,
not what the camera saw.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

__all__ = [
    "CAMVID_C3",
    "CIFAR100_FINE",
    "KWS20_V3",
    "MNIST",
    "MODEL_LABELS",
    "class_label",
    "label_summary",
    "summary_label",
]

MNIST: tuple[str, ...] = tuple(str(d) for d in range(10))

KWS20_V3: tuple[str, ...] = (
    "up", "down", "left", "right", "stop", "go", "yes", "no", "on", "off",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero",
    "unknown",
)  # fmt: skip

CIFAR100_FINE: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip

CAMVID_C3: tuple[str, ...] = ("Building", "Sky", "Tree", "Other")

#: Zoo model name -> its dataset's class names, in class-index order.
MODEL_LABELS: Mapping[str, Sequence[str]] = {
    "convnet5": MNIST,
    "kws20_v3": KWS20_V3,
    "unet": CAMVID_C3,
    **{
        name: CIFAR100_FINE
        for name in (
            "simplenet",
            "ressimplenet",
            "widenet",
            "efficientnetv2",
            "mobilenetv2_075",
            "efficientnetv2_nodw",
            "mobilenetv2_075_nodw",
        )
    },
}

#: An agent's classifier summary: ``class N (score S)``.
_SUMMARY = re.compile(r"^class (\d+) (\(score [^)]*\))$")


def class_label(model: str, index: int) -> str | None:
    """The name of class ``index`` of zoo model ``model``; None when it has no names (or no such class)."""
    labels = MODEL_LABELS.get(model)
    if labels is None or not 0 <= index < len(labels):
        return None
    return labels[index]


def summary_label(model: str, summary: str) -> str | None:
    """The class name in an agent's ``class N (score S)`` summary of ``model``'s output (None: none)."""
    match = _SUMMARY.match(summary)
    return None if match is None else class_label(model, int(match.group(1)))


def label_summary(model: str, summary: str) -> str:
    """``class 72 (score 1464)`` of a CIFAR-100 model as ``class 72 "seal" (score 1464)``;
    any other summary (a map, an unnamed class, another model) unchanged."""
    label = summary_label(model, summary)
    if label is None:
        return summary
    index, _, score = summary.removeprefix("class ").partition(" ")
    return f'class {index} "{label}" {score}'
