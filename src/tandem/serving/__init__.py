"""The model server: a bundle reader, retrieve / rank / recommend as plain functions, an HTTP app and batch scoring.

Nothing here imports torch or Django: a bundle is served with ONNX Runtime, numpy, FAISS (for ANN indexes) and the
training code's own feature transforms (`tandem.features`). Modules are imported where used, so that the training
stack, which imports `tandem.serving.index` to build indexes, does not load the HTTP app.
"""
