"""Model, loss and artifact unit tests (no Ray, no Spark)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recsys.training.artifact import load_model, save_model
from recsys.training.encoder import apply_trainable_layers, build_encoder, load_tokenizer
from recsys.training.evaluation_ndcg import ndcg_at_k
from recsys.training.loss import NegativeSampler, sampled_softmax_loss
from recsys.training.model import RecModel, TrainStep
from recsys.training.settings import EncoderConfig, RandomInitConfig
from recsys.training.towers import ModelSpec

VOCAB = 1000


def tiny_model(num_items: int = 20, hybrid: bool = True, seed: int = 0) -> RecModel:
    encoder = build_encoder(EncoderConfig(random_init=RandomInitConfig(), trainable_layers=-1), VOCAB, seed)
    spec = ModelSpec(encoder_hidden=32, embedding_dim=16, num_items=num_items, hybrid_id_embeddings=hybrid,
                     max_text_tokens=8, max_history=6, user_layers=2, user_heads=2, user_ff_dim=32,
                     dropout=0.0, temperature=0.1, base_model="test")
    torch.manual_seed(seed)
    model = RecModel(encoder, spec)
    model.item_tower.id_known[: num_items // 2] = True
    return model.eval()


def tokens(n: int, length: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[:, 7:] = 0
    return ids, mask


def test_item_vectors_are_unit_and_cold_items_use_text_only() -> None:
    model = tiny_model()
    ids, mask = tokens(4)
    idx = torch.tensor([0, 15, 99, -1])  # known, cold (never trained), beyond the table, invalid
    with torch.no_grad():
        vec = model.encode_items(ids, mask, idx)
        pooled = model.item_tower.pool(ids, mask)
        text_only = torch.nn.functional.normalize(model.item_tower.proj(pooled), dim=-1)
    assert vec.shape == (4, 16)
    assert torch.allclose(vec.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert not torch.allclose(vec[0], text_only[0])
    assert torch.allclose(vec[1:], text_only[1:], atol=1e-6)


def test_text_beyond_max_tokens_is_ignored() -> None:
    model = tiny_model()
    ids, mask = tokens(2)
    longer = torch.cat([ids, torch.full((2, 5), 7)], 1)
    longer_mask = torch.cat([mask, torch.ones(2, 5, dtype=torch.long)], 1)
    with torch.no_grad():
        assert torch.allclose(model.encode_items(ids, mask, torch.tensor([0, 1])),
                              model.encode_items(longer, longer_mask, torch.tensor([0, 1])), atol=1e-6)


def test_trailing_padding_columns_do_not_change_item_vectors() -> None:
    model = tiny_model()
    ids, mask = tokens(3)
    mask[1, 4:] = 0  # every row shorter than max_text_tokens: pool() drops the all-padding columns
    with torch.no_grad():
        trimmed = model.encode_items(ids, mask, torch.tensor([0, 1, 15]))
        padded = model.item_tower.from_pooled(
            _mean_pool_untrimmed(model, ids[:, :8], mask[:, :8]), torch.tensor([0, 1, 15]))
    assert torch.allclose(trimmed, padded, atol=1e-5)


def _mean_pool_untrimmed(model: RecModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    from recsys.training.towers import mean_pool

    out = model.item_tower.encoder(input_ids=ids, attention_mask=mask)
    return mean_pool(out.last_hidden_state, mask)


def test_user_tower_ignores_padding_and_uses_recency() -> None:
    model = tiny_model()
    g = torch.Generator().manual_seed(1)
    items = torch.nn.functional.normalize(torch.randn(3, 16, generator=g), dim=-1)
    short = torch.zeros(1, 4, 16)
    short[0, 1:] = items
    short_mask = torch.tensor([[False, True, True, True]])
    long = torch.randn(1, 6, 16, generator=g)  # garbage in the padded slots must not matter
    long[0, 3:] = items
    long_mask = torch.tensor([[False, False, False, True, True, True]])
    with torch.no_grad():
        a = model.encode_users(short, short_mask)
        b = model.encode_users(long, long_mask)
        reordered = short.clone()
        reordered[0, 1:] = items.flip(0)
        c = model.encode_users(reordered, short_mask)
        empty = model.encode_users(torch.zeros(2, 4, 16), torch.zeros(2, 4, dtype=torch.bool))
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-3)
    assert torch.isfinite(empty).all()
    assert torch.allclose(a.norm(dim=-1), torch.ones(1), atol=1e-5)


def test_user_vector_is_causal() -> None:
    """The last position summarises the history; earlier outputs do not see later items."""
    model = tiny_model()
    g = torch.Generator().manual_seed(2)
    hist = torch.randn(1, 5, 16, generator=g)
    mask = torch.ones(1, 5, dtype=torch.bool)
    prefix = model.encode_users(hist[:, :3], mask[:, :3])
    padded = torch.cat([torch.zeros(1, 2, 16), hist[:, :3]], 1)
    padded_mask = torch.tensor([[False, False, True, True, True]])
    assert torch.allclose(prefix, model.encode_users(padded, padded_mask), atol=1e-5)
    tower = model.user_tower
    attn = tower.attention_mask(mask)
    with torch.no_grad():
        before = tower.layers(hist, mask=attn)
        changed = hist.clone()
        changed[0, 4] += 1.0
        after = tower.layers(changed, mask=attn)
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert not torch.allclose(before[:, 4], after[:, 4], atol=1e-3)


def test_loss_masks_history_and_duplicate_positives() -> None:
    users = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    items = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    target = torch.tensor([1, 1, 2])
    negatives = torch.tensor([3, 4])
    candidates = torch.cat([target, negatives])
    cand_vecs = items[candidates]
    history = torch.tensor([[3, -1], [-1, -1], [2, 4]])
    loss = sampled_softmax_loss(users, cand_vecs, target, candidates, history, 0.1)
    expected = []
    for row in range(3):
        logits = (users[row] @ cand_vecs.t()) / 0.1
        allowed = [j for j in range(5) if j == row or (candidates[j] != target[row]
                                                       and candidates[j] not in history[row].tolist())]
        expected.append(-torch.log_softmax(logits[allowed], 0)[allowed.index(row)])
    assert torch.allclose(loss, torch.stack(expected).mean(), atol=1e-5)


def test_logq_correction_lowers_popular_items() -> None:
    users = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    cand = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    target = torch.tensor([0, 1])
    candidates = torch.tensor([0, 1, 2, 3])
    history = torch.full((2, 1), -1)
    log_q = torch.tensor([0.0, 0.0, 5.0, 5.0])
    plain = sampled_softmax_loss(users, cand, target, candidates, history, 0.1)
    corrected = sampled_softmax_loss(users, cand, target, candidates, history, 0.1, log_q)
    assert corrected < plain


def test_negative_sampler_follows_smoothed_popularity() -> None:
    counts = np.array([0, 1, 100, 10000])
    sampler = NegativeSampler(counts, 0.75, batch_size=8, num_negatives=4000, seed=0)
    draws = np.bincount(sampler.sample().numpy(), minlength=4)
    assert draws[0] == 0
    assert draws[3] > draws[2] > draws[1]
    assert np.isfinite(sampler.log_q.numpy()).all()


def test_train_step_backpropagates_into_both_towers() -> None:
    model = tiny_model().train()
    step = TrainStep(model, encoder_trainable=True)
    ids, mask = tokens(20)
    step.token_ids, step.token_mask = ids, mask
    loss = step("loss", history=torch.tensor([[-1, 1, 2], [3, 4, 5]]), target=torch.tensor([6, 7]),
                negatives=torch.tensor([8, 9, 10]))
    loss.backward()
    assert model.item_tower.proj.weight.grad is not None
    assert model.user_tower.out.weight.grad is not None
    assert any(p.grad is not None for p in model.item_tower.encoder.parameters())


def test_trainable_layers() -> None:
    encoder = build_encoder(EncoderConfig(random_init=RandomInitConfig(layers=3)), VOCAB, 0)
    apply_trainable_layers(encoder, 1)
    trainable = {n.split(".")[2] for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable == {"2"}
    apply_trainable_layers(encoder, 0)
    assert not any(p.requires_grad for p in encoder.parameters())


def test_ndcg_at_k() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4]])
    gains = ndcg_at_k(scores, torch.tensor([1, 0]), torch.tensor([[0, -1], [-1, -1]]), k=2)
    assert gains[0] == pytest.approx(1.0)  # item 0 is excluded, so item 1 ranks first
    assert gains[1] == pytest.approx(0.0)  # rank 3 > k
    gains = ndcg_at_k(scores, torch.tensor([2, 2]), torch.tensor([[-1], [-1]]), k=10)
    assert gains[0] == pytest.approx(1 / math.log2(4))


def test_artifact_round_trip(tmp_path: Path) -> None:
    model = tiny_model()
    tokenizer = load_tokenizer("minilm")
    save_model(str(tmp_path / "m"), model, tokenizer)
    loaded = load_model(str(tmp_path / "m"))
    assert loaded.tokenizer is not None and loaded.spec == model.spec
    assert not loaded.model.training
    ids, mask = tokens(5)
    idx = torch.arange(5)
    hist = torch.randn(2, 4, 16)
    hmask = torch.tensor([[False, True, True, True], [True, True, True, True]])
    with torch.no_grad():
        assert torch.allclose(model.encode_items(ids, mask, idx), loaded.encode_items(ids, mask, idx))
        assert torch.allclose(model.encode_users(hist, hmask), loaded.encode_users(hist, hmask))
