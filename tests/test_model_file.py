"""The wire-level reader: the structure parsed alone, each weight read straight from the file,
equal to what onnx.load gives for any mix of initializers."""

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from modelkit import make_model, value
from onnx import helper, numpy_helper

from npu_tui.core.model.onnx_file import load_model

dtypes = st.sampled_from([np.float32, np.float16, np.float64, np.int64, np.int32])
tensors = st.lists(
    dtypes.flatmap(lambda dt: arrays(dt, st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple))),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(values=tensors, as_float_data=st.booleans())
def test_every_initializer_reads_back_as_onnx_load_gives_it(tmp_path_factory, values, as_float_data):
    inits = []
    for i, array in enumerate(values):
        tensor = numpy_helper.from_array(array, f"t{i}")
        if as_float_data and array.dtype == np.float32:
            tensor = helper.make_tensor(f"t{i}", onnx.TensorProto.FLOAT, array.shape, array.reshape(-1).tolist())
        inits.append(tensor)
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], [value("x", [1])], [value("y", [1])], inits)
    path = tmp_path_factory.mktemp("m") / "model.onnx"
    onnx.save(model, str(path))
    loaded = load_model(path)
    expected = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    assert [t.name for t in loaded.model.graph.initializer] == list(expected)
    for tensor in loaded.model.graph.initializer:
        got = loaded.read(tensor)
        assert got.dtype == expected[tensor.name].dtype and got.shape == expected[tensor.name].shape
        np.testing.assert_array_equal(got, expected[tensor.name])
    assert loaded.model.graph.node == model.graph.node and loaded.model.opset_import == model.opset_import
