"""maskserve in a Ray Data pipeline of one's own (``pip install 'maskserve[ray]'``)::

    import ray, maskserve.ray
    from ray.data import ActorPoolStrategy

    ds = ray.data.read_parquet("s3://bucket/texts.parquet")
    model = {"model": "google-bert/bert-base-uncased", "parameters": {"top_k": 3}}
    ds = ds.map_batches(maskserve.ray.FillMask, fn_constructor_kwargs=model, batch_size=64,
                        compute=ActorPoolStrategy(size=4))

Each row gets ``answer`` (the HF API's answer for its text, as JSON text) and ``error``; ``Score`` does the
same for sentence scores. docs/datasets.md has the whole story.
"""

from maskserve.jobs.ray_data import FillMask, Score

__all__ = ["FillMask", "Score"]
