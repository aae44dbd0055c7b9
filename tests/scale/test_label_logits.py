"""The LM head at label positions only: the same numbers as the full logits (up to float rounding),
through peft and opacus, and a CPU training run that still gives today's numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dpaudit.data.tokenize import IGNORE_INDEX, encode_record, pad_batch
from dpaudit.models import scoring
from dpaudit.train import TrainConfig, train_adapter
from dpaudit.train.loop import per_example_loss
from tests.conftest import make_records


def full_logits_loss(model, batch):
    """The reference (dpaudit before issue #12): the head over every position."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].double()
    labels = batch["labels"][:, 1:]
    token_loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
    mask = (labels != IGNORE_INDEX).double()
    return (token_loss * mask).sum(1) / mask.sum(1).clamp(min=1)


@pytest.fixture()
def batch(micro_tokenizer):
    records = make_records(6, seed=4)
    examples = [encode_record(r, micro_tokenizer, max_length=24 + 6 * i) for i, r in enumerate(records)]  # ragged rows
    return pad_batch(examples, pad_id=micro_tokenizer.pad_token_id)


@pytest.mark.parametrize("positions", [True, False], ids=["positions", "first-target-fallback"])
def test_per_example_loss_matches_full_logits(micro_model, batch, monkeypatch, positions):
    monkeypatch.setattr(scoring, "_head_takes_positions", lambda model: positions)
    with torch.no_grad():
        ours = per_example_loss(micro_model, batch)
        reference = full_logits_loss(micro_model, batch)
    assert ours.dtype == torch.float32 and ours.shape == (6,)
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-6)


def test_target_logits_keep_one_row_per_target_token(micro_model, batch):
    targets = scoring.next_token_targets(batch["labels"])
    is_target = targets != IGNORE_INDEX
    with torch.no_grad():
        logits = scoring.target_logits(micro_model, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                       is_target=is_target)
        full = micro_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape == (int(is_target.sum()), full.shape[-1])
    torch.testing.assert_close(logits, full[is_target], rtol=1e-5, atol=1e-5)


def test_through_peft_and_opacus_the_loss_is_the_same(micro_model, batch):
    from opacus import GradSampleModule
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(micro_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        reference = full_logits_loss(peft_model, batch)  # before opacus hooks in: they record every forward
    wrapped = GradSampleModule(peft_model, batch_first=True, loss_reduction="sum")
    assert scoring.causal_lm(wrapped) is peft_model.get_base_model()
    loss = per_example_loss(wrapped, batch)
    torch.testing.assert_close(loss.detach().double(), reference, rtol=1e-5, atol=1e-6)
    loss.sum().backward()
    grad_samples = [p.grad_sample for p in peft_model.parameters() if p.requires_grad]
    assert grad_samples and all(g.shape[0] == 6 for g in grad_samples)  # one per-example gradient per row


# dpaudit's numbers on the CPU before issue #12 (full logits, base cast to float32 after loading):
# LoRA, 6 steps, batch 8, seed 0 on the micro model. The label-position head must reproduce them.
PINNED_LOSSES = [6.01487398147583, 6.002021312713623, 6.000433444976807, 5.997800827026367, 5.9925079345703125, 5.984320163726807]
PINNED_WEIGHT_MASS = 99.64713589465828


def test_cpu_defaults_give_the_numbers_of_before(micro_model, micro_tokenizer):
    result = train_adapter(base_model=micro_model, tokenizer=micro_tokenizer, members=make_records(24, seed=1),
                           config=TrainConfig(max_steps=6, batch_size=8, seed=0, checkpoint_every=0), progress=False)
    assert result.losses == pytest.approx(PINNED_LOSSES, rel=1e-5)
    mass = float(sum(v.double().abs().sum() for v in result.adapter_state.values()))
    assert mass == pytest.approx(PINNED_WEIGHT_MASS, rel=1e-5)
    assert result.card["placement"] == {"device": "cpu", "dtype": "float32", "quantize": None, "processes": 1}
