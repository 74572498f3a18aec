"""The model zoo: one module per model, its file name the model's kind (models/registry.py).

A module here defines one `CtrModel` subclass whose MODEL_KIND is the module's name, exposed
as the module attribute `MODEL`, and, when the model has its own hyper-parameters, a frozen
dataclass `MODEL.Settings` whose fields are named `<kind>_<setting>`. Nothing else registers
a model: adding one is adding a file here and its test.
"""
