from dpaudit.data.records import Message, Record
from dpaudit.data.tokenize import IGNORE_INDEX, encode_prompt, encode_record, pad_batch
from tests.conftest import make_records


def test_labels_cover_assistant_tokens_only(micro_tokenizer):
    record = make_records(1)[0]
    enc = encode_record(record, micro_tokenizer, max_length=256)
    assert len(enc.input_ids) == len(enc.labels)
    target = [t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE_INDEX]
    decoded = micro_tokenizer.decode(target)
    assert record.response in decoded
    assert record.prompt not in decoded
    assert decoded.endswith(micro_tokenizer.eos_token)


def test_prompt_is_prefix_of_full_encoding(micro_tokenizer):
    record = make_records(1)[0]
    enc = encode_record(record, micro_tokenizer, max_length=256)
    prompt = encode_prompt(record, micro_tokenizer, max_length=256)
    assert enc.input_ids[: len(prompt)] == prompt
    assert all(label == IGNORE_INDEX for label in enc.labels[: len(prompt)])
    assert enc.labels[len(prompt)] != IGNORE_INDEX


def test_multi_turn_labels_every_assistant_turn(micro_tokenizer):
    record = Record(
        id="m",
        messages=(
            Message("system", "Be brief."),
            Message("user", "Hi"),
            Message("assistant", "Hello there"),
            Message("user", "Bye"),
            Message("assistant", "Goodbye now"),
        ),
    )
    enc = encode_record(record, micro_tokenizer, max_length=256)
    decoded = micro_tokenizer.decode([t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE_INDEX])
    assert "Hello there" in decoded and "Goodbye now" in decoded and "Bye" not in decoded.replace("Goodbye", "")


def test_truncation_keeps_targets(micro_tokenizer):
    long_prompt = Record(id="l", messages=(Message("user", "word " * 300), Message("assistant", "short answer")))
    enc = encode_record(long_prompt, micro_tokenizer, max_length=32)
    assert len(enc.input_ids) == 32
    assert enc.n_target_tokens > 0


def test_pad_batch_shapes(micro_tokenizer):
    encs = [encode_record(r, micro_tokenizer, max_length=64) for r in make_records(3)]
    batch = pad_batch(encs, pad_id=micro_tokenizer.pad_token_id)
    width = max(len(e.input_ids) for e in encs)
    assert batch["input_ids"].shape == (3, width)
    assert batch["attention_mask"].sum().item() == sum(len(e.input_ids) for e in encs)
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
