"""Layer 1: text -> embedding.

- ``encoder``: :class:`~shared_router.encoders.encoder.Encoder`, the front end (backend
  choice, batching, the embedding cache).
- ``cache``: :class:`~shared_router.encoders.cache.EmbeddingCache`, vectors in SQLite.
- ``folders``: what an encoder name stands for; folder fingerprints.
- ``bert_folder``: a BERT sentence-transformers folder read into numpy (config, weights,
  tokenizer, int8 quantisation).
- ``int8_folder``: the shipped int8 MiniLM folder (``all-MiniLM-L6-v2-int8/``, package
  data) and its versioned manifest, verified before use.
- ``int8_export``: writes that folder, byte for byte, from the fp32 weights.
- ``wordpiece``: BERT word-piece tokenization in pure Python, with the ids of HF
  ``tokenizers`` (its character tables, ``wordpiece_chars.json``, probed from it).
- ``clipping``: the head + tail clipping of long texts, without tokenizing them whole.
- ``bert_numpy``: the MiniLM forward pass in numpy (the reference of the int8 function).
- ``bert_onnx``: the same function on ONNX Runtime (the fast path).
- ``onnx_proto``: ONNX model files in protobuf's wire format, written without the onnx
  package.
- ``onnx_runtime``: importing ONNX Runtime, and whether its int8 kernel is exact on this CPU.
- ``onnx_cache``: the on-disk cache of built ONNX graphs, checked before a graph is used.
- ``torch_backend``: sentence-transformers, any model (the ``train`` extra).

May import: layer 0 (``errors``, ``types``, ``_internal``) and ``data``; never ``model`` or
anything above.
"""
