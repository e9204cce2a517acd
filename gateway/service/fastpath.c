/* The gateway's per-reading work in C: gateway/service/readings.py's fast_readings, points.py's
 * line loop and decode.py's envelope, for the common message; message() (fastpath_message.c)
 * does all three from the message's bytes. Each function gives the Python version's exact
 * result or None ("not mine"), and the Python version then runs: anything unusual (a value that
 * is not a finite float or a 64-bit integer, a name the schema refuses, more than MAX_METRICS
 * metrics, a missing anchor) is left to it, and from there to decode.py's careful path, which
 * names what is wrong. tests/unit/test_fastpath.py and test_fastpath_message.py pin both to the
 * same output.
 *
 * Built by setup.py as an optional extension: without a compiler the gateway runs the Python
 * versions (SEN_PURE_PYTHON=1 chooses them too). */
#include "fastpath.h"

PyObject *key_seq, *key_m, *key_s, *key_ts, *key_up;
PyTypeObject *reading_type, *decoded_type;

static PyObject *fp_setup(PyObject *self, PyObject *args)
{
    PyObject *reading, *decoded;
    if (!PyArg_ParseTuple(args, "O!O!", &PyType_Type, &reading, &PyType_Type, &decoded))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)reading, &PyTuple_Type)
        || !PyType_IsSubtype((PyTypeObject *)decoded, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "setup(Reading, Decoded): two tuple types");
        return NULL;
    }
    Py_XSETREF(reading_type, (PyTypeObject *)Py_NewRef(reading));
    Py_XSETREF(decoded_type, (PyTypeObject *)Py_NewRef(decoded));
    Py_RETURN_NONE;
}

static PyObject *fp_setup_telemetry(PyObject *self, PyObject *args)
{
    PyObject *telemetry, *bootkey, *board;
    if (!PyArg_ParseTuple(args, "O!O!U", &PyType_Type, &telemetry, &PyType_Type, &bootkey, &board))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)bootkey, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "setup_telemetry(Telemetry, BootKey, default_board): BootKey a tuple type");
        return NULL;
    }
    Py_XSETREF(telemetry_type, (PyTypeObject *)Py_NewRef(telemetry));
    Py_XSETREF(bootkey_type, (PyTypeObject *)Py_NewRef(bootkey));
    Py_XSETREF(default_board, Py_NewRef(board));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"setup_telemetry", fp_setup_telemetry, METH_VARARGS,
     "setup_telemetry(Telemetry, BootKey, default_board): what telemetry() makes."},
    {"telemetry", (PyCFunction)(void (*)(void))fp_telemetry, METH_FASTCALL,
     "telemetry(doc, site, device) -> Telemetry | None: decode._telemetry for the common message."},
    {"message", (PyCFunction)(void (*)(void))fp_message, METH_FASTCALL,
     "message(payload, site, device) -> Telemetry | None: decode_telemetry from the bytes, lines made."},
    {"setup", fp_setup, METH_VARARGS, "setup(Reading, Decoded): the types readings() makes."},
    {"readings", (PyCFunction)(void (*)(void))fp_readings, METH_FASTCALL,
     "readings(raw, envelope_up, boot) -> Decoded | None: readings.fast_readings, or None (not mine)."},
    {"lines", (PyCFunction)(void (*)(void))fp_lines, METH_FASTCALL,
     "lines(readings, fields, head, site, device, board, anchor) -> (lines, newest, sensors) | None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastpath", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    key_seq = PyUnicode_InternFromString("seq");
    key_m = PyUnicode_InternFromString("m");
    key_s = PyUnicode_InternFromString("s");
    key_ts = PyUnicode_InternFromString("ts");
    key_up = PyUnicode_InternFromString("up");
    if (!key_seq || !key_m || !key_s || !key_ts || !key_up || envelope_keys() < 0)
        return NULL;
    return PyModule_Create(&module);
}

