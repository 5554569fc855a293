"""lib.features.text: templates as data; CuPL and DCLIP descriptor files read in class order; padding."""
from __future__ import annotations

import json

import pytest
import torch

from lib.data.base import DESCRIPTOR_DIR
from lib.features import text as text_side

EUROSAT = ["Annual Crop Land", "Forest", "Herbaceous Vegetation Land", "Highway or Road", "Industrial Buildings",
           "Pasture Land", "Permanent Crop Land", "Residential Buildings", "River", "Sea or Lake"]


def _write(tmp_path, table, name="d.json"):
    path = tmp_path / name
    path.write_text(json.dumps(table))
    return path


def test_templates():
    assert len(text_side.IMAGENET_TEMPLATES) == 80 and all("{}" in t for t in text_side.IMAGENET_TEMPLATES)
    assert text_side.SINGLE_TEMPLATE == ("a photo of a {}.",)


@pytest.mark.parametrize("descriptor,sentence", [
    ("a long neck", "giraffe, which is a long neck"),
    ("an orange beak", "giraffe, which is an orange beak"),
    ("used for riding", "giraffe, which is used for riding"),
    ("has spots", "giraffe, which has spots"),
    ("often found in savannas", "giraffe, which often found in savannas"),
    ("can be tall", "giraffe, which can be tall"),
    ("brown patches", "giraffe, which has brown patches"),
    # the official code tests string prefixes, not words (make_descriptor_sentence): followed as it is
    ("angular head", "giraffe, which is angular head"),
    ("canopy", "giraffe, which canopy"),
    ("", "giraffe, which has "),
])
def test_dclip_sentence_rules(descriptor, sentence):
    assert text_side.dclip_sentence("giraffe", descriptor) == sentence
    assert text_side.dclip_sentence("giraffe", descriptor, period=True) == sentence + "."


def test_cupl_and_dclip_files_come_back_in_dataset_order(tmp_path):
    path = _write(tmp_path, {"dog": ["has a tail", "a pet"], "Cat": ["whiskers"], "sea_lion": []})
    classes = ["Sea Lion", "cat", "dog"]
    assert text_side.load_descriptors(path, classes) == [[""], ["whiskers"], ["has a tail", "a pet"]]
    # DCLIP's sentences name the class as its file key does (the official code's wordify(key))
    assert text_side.load_descriptors(path, classes, "dclip") == [
        ["sea lion, which has "], ["Cat, which has whiskers"], ["dog, which has a tail", "dog, which is a pet"]]


def test_descriptor_errors_name_file_and_class(tmp_path):
    path = _write(tmp_path, {"dog": ["x"], "cat": ["y"], "cow": ["z"]})
    with pytest.raises(text_side.DescriptorError, match=r"d.json has no entry for class\(es\) \['horse'\]"):
        text_side.load_descriptors(path, ["dog", "cat", "cow", "horse"])
    with pytest.raises(text_side.DescriptorError, match=r"names class\(es\) not in the dataset: \['cow'\]"):
        text_side.load_descriptors(path, ["dog", "cat"])
    assert text_side.load_descriptors(path, ["dog", "cat"], extra="ignore") == [["x"], ["y"]]
    with pytest.raises(text_side.DescriptorError, match="lists class 'Dog' twice"):
        text_side.load_descriptors(_write(tmp_path, {"dog": [], "Dog": []}, "twice.json"), ["dog"])
    with pytest.raises(text_side.DescriptorError, match="class 'dog' must map to a list of strings"):
        text_side.load_descriptors(_write(tmp_path, {"dog": "a pet"}, "str.json"), ["dog"])
    with pytest.raises(text_side.DescriptorError, match="format must be 'cupl' or 'dclip'"):
        text_side.load_descriptors(path, ["dog"], "lazsl")
    with pytest.raises(text_side.DescriptorError, match="not found"):
        text_side.load_descriptors(tmp_path / "missing.json", ["dog"])


def test_project_descriptor_files_cover_their_classes():
    from lib.data.demo_world import CLASSNAMES

    demo = text_side.load_descriptors(DESCRIPTOR_DIR / "demo_digits.json", CLASSNAMES)
    eurosat = text_side.load_descriptors(DESCRIPTOR_DIR / "eurosat.json", EUROSAT)
    for classes, sentences in ((CLASSNAMES, demo), (EUROSAT, eurosat)):
        assert len(sentences) == len(classes)
        for name, per_class in zip(classes, sentences):
            assert len(per_class) >= 3 and all(name.lower() in s.lower() for s in per_class)


def test_pad_descriptions_masks_the_padding():
    feats = [torch.ones(2, 3), 2 * torch.ones(1, 3), 3 * torch.ones(4, 3)]
    desc, mask = text_side.pad_descriptions(feats)
    assert desc.shape == (3, 4, 3) and mask.tolist() == [[True, True, False, False], [True, False, False, False],
                                                         [True] * 4]
    assert torch.equal(desc[1, 0], 2 * torch.ones(3)) and desc[1, 1:].abs().sum() == 0
    with pytest.raises(ValueError, match="class 1"):
        text_side.pad_descriptions([torch.ones(2, 3), torch.ones(0, 3)])
