"""`recsys embed`: Spark embeddings equal the model's own output; every item and every user gets one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pyspark.sql import SparkSession

from recsys.lakehouse import TableStore
from recsys.schemas import PAD_ITEM, Tables
from recsys.training.artifact import load_model, save_model
from recsys.training.encoder import build_encoder, load_tokenizer, resolve_model_path
from recsys.training.item_data import load_item_tokens
from recsys.training.model import RecModel
from recsys.training.registry import record_model
from recsys.training.settings import EncoderConfig, RandomInitConfig
from recsys.training.synthetic import SyntheticSpec, write_synthetic_tables
from recsys.training.towers import ModelSpec
from recsys.training.trainer import TrainResult

REPO = Path(__file__).resolve().parents[1]
SPEC = SyntheticSpec(num_items=60, num_users=40, events_per_user=8, cold_items=6)


def publish_random_model(store: TableStore, tmp_path: Path, version: str) -> str:
    tokenizer = load_tokenizer("minilm")
    encoder = build_encoder(EncoderConfig(random_init=RandomInitConfig()), len(tokenizer), 0)
    spec = ModelSpec(encoder_hidden=32, embedding_dim=16, num_items=SPEC.num_items, hybrid_id_embeddings=True,
                     max_text_tokens=12, max_history=8, user_layers=1, user_heads=2, user_ff_dim=32,
                     dropout=0.0, temperature=0.1, base_model="test")
    torch.manual_seed(1)
    model = RecModel(encoder, spec)
    counts = load_item_tokens(store.snapshot(Tables.ITEM_TOKENS), 12).train_count
    model.item_tower.id_known.copy_(torch.from_numpy(counts > 0))
    torch.nn.init.normal_(model.item_tower.id_embedding.weight, std=1.0)  # type: ignore[union-attr]
    path = str(tmp_path / version)
    save_model(path, model.eval(), tokenizer)
    record_model(store, TrainResult(version, path, {"best_val_ndcg_at_10": 0.1}, {"train_examples": 0}),
                 "test", 16, "unknown", {})
    return path


def test_embed_job(spark: SparkSession, store: TableStore, lakehouse: Path, tmp_path: Path) -> None:
    from recsys.embedding.settings import EmbedConfig
    from recsys.embedding.spark_embed import user_embeddings
    from recsys.jobs.embed import main

    write_synthetic_tables(spark, store, resolve_model_path("minilm"), SPEC)
    publish_random_model(store, tmp_path, "m-old")
    path = publish_random_model(store, tmp_path, "m-new")  # newest row: the default
    args = ["--env", "test", "--conf-dir", str(REPO / "conf"), "--lakehouse", str(lakehouse)]
    assert main(args) == 0

    model = load_model(path)
    items = {r.item_idx: r for r in store.read(Tables.ITEM_EMBEDDINGS).collect()}
    assert sorted(items) == list(range(SPEC.num_items))
    assert {r.model_version for r in items.values()} == {"m-new"}
    tokens = load_item_tokens(store.snapshot(Tables.ITEM_TOKENS), 12)
    cold = {i for i in range(SPEC.num_items) if tokens.train_count[i] == 0}
    assert cold and {i for i, r in items.items() if r.is_cold} == cold
    assert items[3].item_id == "item0003"
    direct = model.encode_items(tokens.input_ids, tokens.attention_mask, torch.arange(SPEC.num_items))
    spark_vectors = np.array([items[i].embedding for i in range(SPEC.num_items)], dtype=np.float32)
    np.testing.assert_allclose(spark_vectors, direct.numpy(), atol=1e-5)
    # cold items: text only (no id embedding), i.e. what an item index unknown to the model gets
    text_only = model.encode_items(tokens.input_ids, tokens.attention_mask, torch.full((SPEC.num_items,), -1))
    for i in cold:
        np.testing.assert_allclose(items[i].embedding, text_only[i].numpy(), atol=1e-5)
    warm = next(i for i in range(SPEC.num_items) if i not in cold)
    assert not np.allclose(items[warm].embedding, text_only[warm].numpy(), atol=1e-3)

    users = {r.user_idx: r for r in store.read(Tables.USER_EMBEDDINGS).collect()}
    histories = {r.user_idx: r for r in store.read(Tables.USER_HISTORIES).collect()}
    assert set(users) == {u for u, h in histories.items() if any(i != PAD_ITEM for i in h.history)}
    for u in list(users)[:5]:
        hist = torch.tensor([histories[u].history])
        mask = hist != PAD_ITEM
        vectors = direct[hist.clamp(min=0)]
        expected = model.encode_users(vectors, mask)[0].numpy()
        np.testing.assert_allclose(users[u].embedding, expected, atol=1e-5)
        assert users[u].user_id == histories[u].user_id and users[u].model_version == "m-new"

    # the join path (item matrix too big to broadcast) gives the same user vectors
    frame = user_embeddings(store.read(Tables.USER_HISTORIES), store.read(Tables.ITEM_EMBEDDINGS), path,
                            "m-new", EmbedConfig(broadcast_item_matrix_max_mb=0))
    joined = {r.user_idx: r.embedding for r in frame.collect()}
    assert set(joined) == set(users)
    for u in users:
        np.testing.assert_allclose(joined[u], users[u].embedding, atol=1e-5)


def test_unknown_model_version_is_an_error(spark: SparkSession, store: TableStore, lakehouse: Path,
                                           tmp_path: Path) -> None:
    from recsys.embedding.job import run_embed
    from recsys.embedding.settings import EmbedConfig

    write_synthetic_tables(spark, store, resolve_model_path("minilm"), SPEC)
    publish_random_model(store, tmp_path, "m-1")
    with pytest.raises(ValueError, match="m-2"):
        run_embed(store, EmbedConfig(), "m-2")
