"""Floor 6, one metered /v1 request from key to settlement: ``Completion`` owns it (admission,
hold, upstream slot, settlement); ``access`` authenticates and admits, ``routing`` picks the
models a key may use, ``endpoints`` is the table of metered endpoints, ``relay`` streams the
answer and reports back to the ``Completion``, ``slots`` caps this instance's upstream calls,
``tags`` reads the request's tags."""
