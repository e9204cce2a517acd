/* telemetry(): gateway/service/decode.py's _telemetry for the common message, on the JSON object
 * orjson read: every check of the envelope, the readings by decode_readings, and the Telemetry
 * made as _telemetry makes it, diagnostics (`d`) as decode._diag reads them. None (not mine) at
 * anything else: a key of the wrong type or out of range, a name the schema refuses, a diagnostic
 * string with a character past ASCII; decode.py then decodes it and names what is wrong. fastpath.c says how the two are held to the same result. */
#include "fastpath.h"

PyTypeObject *telemetry_type, *bootkey_type;
PyObject *default_board;  /* decode.DEFAULT_BOARD */

/* The envelope's keys and the Telemetry's attributes, interned once (envelope_keys()). */
enum { V, DEV, BOOT, FID, UP, LO, OB, BOARD, R, D,
       SITE, DEVICE, UP_MS, READINGS, FIELDS, DIAG, KEY, NEEDS_ANCHOR, LINES, KEYS };
static const char *const key_names[KEYS] = {"v", "dev", "boot", "fid", "up", "lo", "ob", "board", "r", "d",
    "site", "device", "up_ms", "readings", "fields", "diag", "key", "needs_anchor", "lines"};
static PyObject *keys[KEYS];

int envelope_keys(void)
{
    for (int i = 0; i < KEYS; i++)
        if ((keys[i] = PyUnicode_InternFromString(key_names[i])) == NULL)
            return -1;
    return 0;
}

static PyObject *get(PyObject *doc, int key)  /* borrowed, NULL when absent */
{
    PyObject *found = PyDict_GetItemWithError(doc, keys[key]);
    if (found == NULL)
        PyErr_Clear();  /* str keys: never an error */
    return found;
}

/* doc[key] when it is an int in [0, high], into *out; absent: *out = -1. 0: neither. */
static int optional_int(PyObject *doc, int key, long long high, long long *out)
{
    PyObject *value = get(doc, key);
    *out = -1;
    return value == NULL || int_in(value, 0, high, out);
}

static PyObject *int_or_none(long long value)
{
    return value < 0 ? Py_NewRef(Py_None) : PyLong_FromLongLong(value);
}

static int set(PyObject *dict, int key, PyObject *value)  /* steals value */
{
    int failed = value == NULL || PyDict_SetItem(dict, keys[key], value) < 0;
    Py_XDECREF(value);
    return failed ? -1 : 0;
}

/* decode._diag: a new dict, None (not mine, a new reference) or NULL (an error is set). */
static PyObject *diag_of(PyObject *d)
{
    PyObject *out, *name, *value, *kept;
    Py_ssize_t pos = 0, len, i;
    if (!PyDict_CheckExact(d))
        return Py_NewRef(Py_None);
    out = PyDict_New();
    while (out != NULL && PyDict_Next(d, &pos, &name, &value)) {
        long long whole;
        if (metric_name(name, &len, 0) == NULL)
            goto not_mine;
        if (PyBool_Check(value)) {
            kept = Py_NewRef(value);
        } else if (PyUnicode_CheckExact(value)) {  /* at most 64 printable characters: ASCII here */
            const char *text = ascii(value, &len);
            if (text == NULL || len > 64)
                goto not_mine;
            for (i = 0; i < len; i++)
                if (text[i] < 0x20 || text[i] > 0x7e)
                    goto not_mine;
            kept = Py_NewRef(value);
        } else if (PyFloat_CheckExact(value)) {
            if (!isfinite(PyFloat_AS_DOUBLE(value)))
                goto not_mine;
            kept = Py_NewRef(value);
        } else if (int_in(value, -9223372036854775807LL, 9223372036854775807LL, &whole)) {
            kept = PyFloat_FromDouble((double)whole);  /* float(int), as decode._number */
        } else {
            goto not_mine;
        }
        if (kept == NULL || PyDict_SetItem(out, name, kept) < 0) {
            Py_XDECREF(kept);
            Py_CLEAR(out);
        } else {
            Py_DECREF(kept);
        }
    }
    return out;
not_mine:
    Py_DECREF(out);
    return Py_NewRef(Py_None);
}

/* A Telemetry as decode._telemetry makes it (readings, fields, diag and lines borrowed; lines
 * NULL: not set, the class's None). uptime_only: Py_True when a reading has only up; fid, up,
 * lo, ob: -1 when absent. */
PyObject *new_telemetry(PyObject *site, PyObject *dev, PyObject *board, long long boot, long long fid,
                        long long up, long long lo, long long ob, PyObject *readings, PyObject *fields,
                        PyObject *diag, PyObject *uptime_only, PyObject *lines)
{
    PyObject *out, *dict, *key, *items[4];
    if (ob >= boot)  /* only an older boot changes which boot is acked */
        ob = -1;
    items[0] = Py_NewRef(site);
    items[1] = Py_NewRef(dev);
    items[2] = PyLong_FromLongLong(fid < 0 ? 0 : fid);
    items[3] = PyLong_FromLongLong(boot);
    if (items[2] == NULL || items[3] == NULL) {
        Py_DECREF(items[0]); Py_DECREF(items[1]); Py_XDECREF(items[2]); Py_XDECREF(items[3]);
        return NULL;
    }
    key = named(bootkey_type, items, 4);
    out = key ? telemetry_type->tp_alloc(telemetry_type, 0) : NULL;
    dict = out ? PyObject_GenericGetDict(out, NULL) : NULL;
    if (dict == NULL
        || set(dict, SITE, Py_NewRef(site)) || set(dict, DEVICE, Py_NewRef(dev))
        || set(dict, BOARD, Py_NewRef(board)) || set(dict, BOOT, Py_NewRef(PyTuple_GET_ITEM(key, 3)))
        || set(dict, FID, Py_NewRef(PyTuple_GET_ITEM(key, 2))) || set(dict, UP_MS, int_or_none(up))
        || set(dict, READINGS, Py_NewRef(readings)) || set(dict, FIELDS, Py_NewRef(fields))
        || set(dict, DIAG, Py_NewRef(diag)) || set(dict, LO, int_or_none(lo)) || set(dict, OB, int_or_none(ob))
        || set(dict, KEY, Py_NewRef(key))
        || set(dict, NEEDS_ANCHOR, Py_NewRef(PyDict_GET_SIZE(diag) && up >= 0 ? Py_True : uptime_only))
        || (lines != NULL && set(dict, LINES, Py_NewRef(lines)))) {
        Py_XDECREF(dict);
        Py_XDECREF(out);
        Py_XDECREF(key);
        return NULL;
    }
    Py_DECREF(dict);
    Py_DECREF(key);
    return out;
}

/* telemetry(doc, site, device) -> Telemetry | None; device: the topic's. */
PyObject *fp_telemetry(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *doc, *site, *device, *version, *dev, *board, *raw, *d, *diag, *decoded, *out;
    long long boot, fid, up, lo, ob, version_value;

    if (nargs != 3 || telemetry_type == NULL || reading_type == NULL) {
        PyErr_SetString(PyExc_TypeError, "telemetry(doc, site, device), after setup() and setup_telemetry()");
        return NULL;
    }
    doc = args[0];
    site = args[1];
    device = args[2];
    if (!PyDict_CheckExact(doc))
        Py_RETURN_NONE;
    version = get(doc, V);
    dev = get(doc, DEV);
    board = get(doc, BOARD);
    raw = get(doc, R);
    if (board == NULL)
        board = default_board;
    if (!int_in(version, 1, 1, &version_value) || dev == NULL || !sensor_name(dev) || !sensor_name(board)
        || PyUnicode_Compare(dev, device) != 0 || !int_in(get(doc, BOOT), 0, U32_MAX, &boot)
        || !optional_int(doc, FID, U32_MAX, &fid) || !optional_int(doc, UP, MAX_UP_MS, &up)
        || !optional_int(doc, LO, U32_MAX, &lo) || !optional_int(doc, OB, U32_MAX, &ob) || raw == NULL) {
        Py_RETURN_NONE;
    }
    d = get(doc, D);
    diag = d == NULL ? PyDict_New() : diag_of(d);
    if (diag == NULL || diag == Py_None)
        return diag;
    decoded = decode_readings(raw, up >= 0, boot);
    if (decoded == NULL || decoded == Py_None) {
        Py_DECREF(diag);
        return decoded;
    }
    out = new_telemetry(site, dev, board, boot, fid, up, lo, ob, PyTuple_GET_ITEM(decoded, 0),
                        PyTuple_GET_ITEM(decoded, 1), diag, PyTuple_GET_ITEM(decoded, 2), NULL);
    Py_DECREF(decoded);
    Py_DECREF(diag);
    return out;
}
