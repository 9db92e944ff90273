import pytest
import torch

from gan_unlearn.errors import UserError
from gan_unlearn.forget import ForgetRequest

LABELS = torch.tensor([0, 1, 2, 1, 0, 2, 1])


def test_class_split_partitions_the_dataset():
    forget, retain = ForgetRequest.for_class(1).split(LABELS, 3)
    assert forget.tolist() == [1, 3, 6]
    assert retain.tolist() == [0, 2, 4, 5]


def test_item_split_and_hash_is_order_independent_and_stable():
    a = ForgetRequest.for_items([5, 0, 3])
    b = ForgetRequest.parse_items("0, 3,5")
    assert a == b and a.hash() == b.hash()
    assert a.hash() == ForgetRequest.for_items([0, 3, 5]).hash()
    assert a.hash() != ForgetRequest.for_items([0, 3, 6]).hash()
    assert a.hash() != ForgetRequest.for_class(0).hash()
    forget, retain = a.split(LABELS, 3)
    assert forget.tolist() == [0, 3, 5] and retain.tolist() == [1, 2, 4, 6]
    d = a.describe()
    assert d == {"kind": "item", "num_items": 3}  # no indices, no images, nothing that identifies them
    keyed = a.describe(bytes(range(32)))
    assert keyed["commitment"] == a.commitment(bytes(range(32))) != a.hash() and keyed["num_items"] == 3
    assert a.commitment(bytes(range(32))) != a.commitment(bytes(range(1, 33)))  # the key matters


def test_items_from_files(tmp_path):
    (tmp_path / "a.txt").write_text("4\n1\n 2\n")
    (tmp_path / "b.json").write_text("[2, 4, 1]")
    assert ForgetRequest.parse_items(str(tmp_path / "a.txt")).indices == (1, 2, 4)
    assert ForgetRequest.parse_items(str(tmp_path / "b.json")).indices == (1, 2, 4)


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("1,-2", "non-negative"),
    ("1,2,2", "unique; duplicated: \\[2\\]"),
    ("one,two", "neither a file nor"),
    ("1.5", "neither a file nor"),
])
def test_bad_item_lists(text, message):
    with pytest.raises(UserError, match=message):
        ForgetRequest.parse_items(text)


def test_bad_file_contents(tmp_path):
    (tmp_path / "bad.json").write_text('["a"]')
    with pytest.raises(UserError, match="list of integers"):
        ForgetRequest.parse_items(str(tmp_path / "bad.json"))
    (tmp_path / "nested.json").write_text("[[1], 2]")
    with pytest.raises(UserError, match="list of integers"):
        ForgetRequest.parse_items(str(tmp_path / "nested.json"))
    (tmp_path / "deep.json").write_text("[" * 50000 + "]" * 50000)
    with pytest.raises(UserError, match="flat list of integers"):
        ForgetRequest.parse_items(str(tmp_path / "deep.json"))
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00\x81" * 100)
    with pytest.raises(UserError, match="is not a text file"):
        ForgetRequest.parse_items(str(tmp_path / "binary"))


def test_request_secrets(tmp_path):
    from gan_unlearn.forget import read_secret

    (tmp_path / "s").write_text(bytes(range(32)).hex() + "\n")
    assert read_secret(tmp_path / "s") == bytes(range(32))
    for content, message in ((b"zz", "not a request secret"), (b"abcd", "at least 16"), (b"\xff" * 40, "not a request")):
        (tmp_path / "bad").write_bytes(content)
        with pytest.raises(UserError, match=message):
            read_secret(tmp_path / "bad")
    with pytest.raises(UserError, match="not found"):
        read_secret(tmp_path / "missing")


def test_out_of_range_requests():
    with pytest.raises(UserError, match="out of range.*7 images"):
        ForgetRequest.for_items([1, 7]).split(LABELS, 3)
    with pytest.raises(UserError, match="class 3 is out of range.*0..2"):
        ForgetRequest.for_class(3).split(LABELS, 3)
    with pytest.raises(UserError, match="out of range"):
        ForgetRequest.for_class(-1).split(LABELS, 3)


def test_forget_set_equal_to_whole_dataset():
    with pytest.raises(UserError, match="whole dataset"):
        ForgetRequest.for_items(range(7)).split(LABELS, 3)
    with pytest.raises(UserError, match="whole dataset"):
        ForgetRequest.for_class(0).split(torch.zeros(4, dtype=torch.long), 1)
