"""The cached pipeline stages and the models they make: the stage cache and manifests, teacher
labelling (label, label_backends), student training (distill, embeddings, wordmodel), ONNX Runtime
(ort), transfer-set export and import, devices and torchrun, saved models (model_card, predict)."""
