"""AMML at the edge: models made small (ONNX, int8), signed, delivered to devices, run there.

* :mod:`amml.edge.export`: ONNX / fp16 / int8 variants of registered versions, checked,
  signed and ledgered (server side; needs PyTorch and ``amml[export]``).
* :mod:`amml.edge.delivery`: which variant a device's group is assigned.
* :mod:`amml.edge.runner`: ``amml-edge``, the device's runner. It imports only the standard
  library, numpy, onnxruntime and paho-mqtt (``pip install 'amml[edge]'``): nothing here is
  imported by this package's ``__init__``.
"""
