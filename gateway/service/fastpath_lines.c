/* lines(): gateway/service/points.py's line loop (fastpath.c says how the two agree). */
#include "fastpath.h"

/* lines(readings, fields, head, site, device, board, anchor) -> (lines, newest, sensors) | None:
 * points._reading_lines. head(site, device, board, sensor) gives a line's measurement and tags. */
PyObject *fp_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *readings, *fields, *head_of, *lines = NULL, *sensors = NULL, *newest;
    PyObject *head = NULL, *sensor = NULL, *call[4];
    Py_ssize_t n, i;
    long long anchor = 0, newest_value = 0;
    int anchored;

    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "lines(readings, fields, head, site, device, board, anchor)");
        return NULL;
    }
    readings = args[0];
    fields = args[1];
    head_of = args[2];
    anchored = args[6] != Py_None;
    if (!PyTuple_CheckExact(readings) || !(PyTuple_CheckExact(fields) || PyList_CheckExact(fields))
        || PySequence_Fast_GET_SIZE(fields) != PyTuple_GET_SIZE(readings)
        || (anchored && !int_in(args[6], -MAX_TS_MS, MAX_TS_MS, &anchor)))
        Py_RETURN_NONE;
    n = PyTuple_GET_SIZE(readings);
    newest = Py_NewRef(Py_None);
    lines = PyList_New(n);
    sensors = PyDict_New();
    if (lines == NULL || sensors == NULL)
        goto error;
    call[0] = args[3];
    call[1] = args[4];
    call[2] = args[5];
    for (i = 0; i < n; i++) {
        PyObject *reading = PyTuple_GET_ITEM(readings, i), *ts, *line, *known;
        Py_ssize_t head_len = 0, part_len = 0;
        const char *head_text, *part_text;
        long long ts_value, up_value;
        if (!PyTuple_Check(reading) || PyTuple_GET_SIZE(reading) != 5)
            goto not_mine;
        ts = PyTuple_GET_ITEM(reading, 1);
        if (ts != Py_None) {
            if (!int_in(ts, 0, MAX_TS_MS, &ts_value))
                goto not_mine;
            Py_INCREF(ts);
        } else {  /* uptime only: anchor + up, or the Python version says AnchorMissing */
            if (!anchored || !int_in(PyTuple_GET_ITEM(reading, 2), 0, MAX_UP_MS, &up_value))
                goto not_mine;
            ts_value = anchor + up_value;
            ts = PyLong_FromLongLong(ts_value);
            if (ts == NULL)
                goto error;
        }
        if (newest == Py_None || ts_value > newest_value) {
            Py_SETREF(newest, Py_NewRef(ts));
            newest_value = ts_value;
        }
        if (head == NULL || PyObject_RichCompareBool(PyTuple_GET_ITEM(reading, 4), sensor, Py_NE) != 0) {
            if (PyErr_Occurred())
                goto error_ts;
            sensor = PyTuple_GET_ITEM(reading, 4);
            call[3] = sensor;
            Py_XSETREF(head, PyObject_Vectorcall(head_of, call, 4, NULL));
            if (head == NULL)
                goto error_ts;
        }
        if (sensor != Py_None) {
            long long before = -1;
            known = PyDict_GetItemWithError(sensors, sensor);
            if (known == NULL && PyErr_Occurred())
                goto error_ts;
            if (known != NULL && !int_in(known, -1, MAX_TS_MS, &before))
                goto not_mine_ts;
            if (ts_value > before && PyDict_SetItem(sensors, sensor, ts) < 0)
                goto error_ts;
        }
        head_text = ascii(head, &head_len);
        part_text = ascii(PySequence_Fast_GET_ITEM(fields, i), &part_len);
        if (head_text == NULL || part_text == NULL)
            goto not_mine_ts;
        line = line_str(head_text, head_len, part_text, part_len, ts_value);
        if (line == NULL)
            goto error_ts;
        Py_DECREF(ts);
        PyList_SET_ITEM(lines, i, line);
        continue;
    error_ts:
        Py_DECREF(ts);
        goto error;
    not_mine_ts:
        Py_DECREF(ts);
        goto not_mine;
    }
    Py_XDECREF(head);
    return Py_BuildValue("(NNN)", lines, newest, sensors);
not_mine:
    Py_XDECREF(head);
    Py_DECREF(lines);
    Py_DECREF(sensors);
    Py_DECREF(newest);
    Py_RETURN_NONE;
error:
    Py_XDECREF(head);
    Py_XDECREF(lines);
    Py_XDECREF(sensors);
    Py_DECREF(newest);
    return NULL;
}

