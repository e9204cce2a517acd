/* readings(): gateway/service/readings.py's fast_readings (fastpath.c says how the two agree). */
#include "fastpath.h"

/* readings.RESERVED_FIELDS, with their lengths. */
static const struct { const char *name; Py_ssize_t len; } reserved[] = {
    {"seq", 3}, {"boot", 4}, {"time", 4}, {"site", 4}, {"device", 6}, {"board", 5}, {"sensor", 6}};

/* readings.METRIC_RE ([a-z][a-z0-9_]{0,63}), and not RESERVED_FIELDS when reserved_too. */
int metric_text(const char *s, Py_ssize_t n, int reserved_too)
{
    Py_ssize_t i;
    if (n < 1 || n > MAX_NAME || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    for (i = 0; reserved_too && i < (Py_ssize_t)(sizeof reserved / sizeof reserved[0]); i++)
        if (reserved[i].len == n && memcmp(reserved[i].name, s, n) == 0)
            return 0;
    return 1;
}

/* metric_text of a str: its bytes, else NULL. */
const char *metric_name(PyObject *name, Py_ssize_t *len, int reserved_too)
{
    const char *s = ascii(name, len);
    return s != NULL && metric_text(s, *len, reserved_too) ? s : NULL;
}

/* topics.NAME_RE: [a-z0-9_-]{1,32}. */
int name_text(const char *s, Py_ssize_t n)
{
    Py_ssize_t i;
    if (n < 1 || n > MAX_SENSOR)
        return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* name_text of a str. */
int sensor_name(PyObject *name)
{
    Py_ssize_t n;
    const char *s = ascii(name, &n);
    return s != NULL && name_text(s, n);
}


/* A tuple subclass (a NamedTuple) of n items, made as tuple.__new__ makes one; steals them. */
PyObject *named(PyTypeObject *type, PyObject **items, Py_ssize_t n)
{
    Py_ssize_t i;
    PyObject *out = type->tp_alloc(type, n);
    if (out == NULL) {
        for (i = 0; i < n; i++)
            Py_DECREF(items[i]);
        return NULL;
    }
    for (i = 0; i < n; i++)
        PyTuple_SET_ITEM(out, i, items[i]);
    return out;
}


/* repr(value) for the common reading (1e-4 <= |value| < 1e9, at most 6 decimals), else NULL:
 * the fewest decimals k whose nearest integer m = value * 10^k gives value back as m / 10^k. The
 * division is IEEE's, correctly rounded, as a parse of the digits is: m's digits are a string
 * that reads back as value. Below 1e9 a double's spacing is under 10^-6, so at most one string
 * of k decimals reads back as it, and the fewest decimals are the fewest digits: repr's choice.
 * Python's repr goes through dtoa, ~a fifth of this pass's time; this is a few multiplications. */
static char *put_float(char *at, double value)
{
    static const double tens[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
    static const long long whole[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    double size = fabs(value);
    int k;
    if (!(size >= 1e-4 && size < 1e9))
        return NULL;
    for (k = 0; k < 7; k++) {
        long long m = llround(value * tens[k]), digits;
        if ((double)m / tens[k] != value)
            continue;
        if (m < 0) {
            *at++ = '-';
            m = -m;
        }
        at = put_int(at, m / whole[k]);
        *at++ = '.';
        if (k == 0) {
            *at++ = '0';
            return at;
        }
        for (digits = whole[k] / 10, m %= whole[k]; digits; digits /= 10)
            *at++ = (char)('0' + (m / digits) % 10);
        return at;
    }
    return NULL;
}


/* A reading's fields part at `at`, sorted by name as ingest.lineproto.encode writes them:
 * parts[0] and parts[1] are boot and seq, parts[2 .. count + 2) the metrics (index into values).
 * The end of what was written, or NULL (an error is set). Room: FIELDS_TEXT_MAX. */
char *fields_text(char *at, Part *parts, const double *values, Py_ssize_t count, long long seq, long long boot)
{
    Py_ssize_t i, j;
    parts[0] = (Part){"boot", 4, -2};
    parts[1] = (Part){"seq", 3, -1};
    for (i = 1; i < count + 2; i++) {  /* a handful of names: insertion sort */
        Part part = parts[i];
        for (j = i; j > 0; j--) {
            Part *left = &parts[j - 1];
            Py_ssize_t common = left->len < part.len ? left->len : part.len;
            int order = memcmp(left->name, part.name, common);
            if (order < 0 || (order == 0 && left->len < part.len))
                break;
            parts[j] = *left;
        }
        parts[j] = part;
    }
    for (i = 0; i < count + 2; i++) {
        if (i)
            *at++ = ',';
        at = put(at, parts[i].name, parts[i].len);
        *at++ = '=';
        if (parts[i].index < 0) {
            at = put_int(at, parts[i].index == -2 ? boot : seq);
            *at++ = 'i';
        } else {
            char *fast = put_float(at, values[parts[i].index]), *repr;
            if (fast != NULL) {
                at = fast;
                continue;
            }
            repr = PyOS_double_to_string(values[parts[i].index], 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (repr == NULL)
                return NULL;
            at = put(at, repr, (Py_ssize_t)strlen(repr));
            PyMem_Free(repr);
        }
    }
    return at;
}


/* One reading's fields part, sorted by name as ingest.lineproto.encode writes them. 1: done,
 * 0: not a reading for this pass, -1: an error is set. *metrics becomes a new dict of floats when
 * a value was an int (decode's careful path makes floats of them too). */
static int fields_of(PyObject **metrics, long long seq, long long boot, PyObject **out)
{
    Part parts[MAX_METRICS + 2];
    double values[MAX_METRICS];
    PyObject *names[MAX_METRICS];
    char text[FIELDS_TEXT_MAX];
    char *at;
    Py_ssize_t pos = 0, count = 0, i;
    PyObject *key, *value;
    int ints = 0;

    if (PyDict_GET_SIZE(*metrics) > MAX_METRICS)
        return 0;
    while (PyDict_Next(*metrics, &pos, &key, &value)) {
        Py_ssize_t len;
        const char *name = metric_name(key, &len, 1);
        double number;
        if (name == NULL)
            return 0;
        if (PyFloat_CheckExact(value)) {
            number = PyFloat_AS_DOUBLE(value);
            if (!isfinite(number))
                return 0;
        } else {
            long long whole;  /* readings._INT64_MAX either way */
            if (!int_in(value, -9223372036854775807LL, 9223372036854775807LL, &whole))
                return 0;
            number = (double)whole;  /* round to nearest, ties to even, as float(int) */
            ints = 1;
        }
        names[count] = key;
        values[count] = number;
        parts[count + 2] = (Part){name, len, (int)count};
        count++;
    }
    at = fields_text(text, parts, values, count, seq, boot);
    if (at == NULL)
        return -1;
    if (ints) {
        PyObject *floats = PyDict_New();
        if (floats == NULL)
            return -1;
        pos = 0;
        for (i = 0; PyDict_Next(*metrics, &pos, &key, &value); i++) {
            PyObject *number = PyFloat_CheckExact(value) ? Py_NewRef(value) : PyFloat_FromDouble(values[i]);
            if (number == NULL || PyDict_SetItem(floats, names[i], number) < 0) {
                Py_XDECREF(number);
                Py_DECREF(floats);
                return -1;
            }
            Py_DECREF(number);
        }
        *metrics = floats;
    } else {
        Py_INCREF(*metrics);
    }
    *out = ascii_str(text, at - text);
    if (*out == NULL) {
        Py_DECREF(*metrics);
        return -1;
    }
    return 1;
}

/* A message's readings: Decoded, None (not mine) or NULL (an error is set). */
PyObject *decode_readings(PyObject *raw, int has_up, long long boot)
{
    PyObject *readings = NULL, *fields = NULL, *items[5];
    Py_ssize_t n, i;
    int uptime_only = 0;

    if (!PyList_CheckExact(raw))
        Py_RETURN_NONE;
    n = PyList_GET_SIZE(raw);
    readings = PyTuple_New(n);
    fields = PyTuple_New(n);
    if (readings == NULL || fields == NULL)
        goto error;
    for (i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(raw, i), *seq, *metrics, *sensor, *ts, *up = NULL, *part, *reading;
        long long seq_value, time_value;
        int done;
        if (!PyDict_CheckExact(item))
            goto not_mine;
        seq = PyDict_GetItemWithError(item, key_seq);
        metrics = seq ? PyDict_GetItemWithError(item, key_m) : NULL;
        if (PyErr_Occurred())
            goto error;
        if (!int_in(seq, 0, U32_MAX, &seq_value) || metrics == NULL || !PyDict_CheckExact(metrics))
            goto not_mine;
        sensor = PyDict_GetItemWithError(item, key_s);
        ts = PyDict_GetItemWithError(item, key_ts);
        if (ts == NULL)
            up = PyDict_GetItemWithError(item, key_up);
        if (PyErr_Occurred())
            goto error;
        if (sensor != NULL && !sensor_name(sensor))
            goto not_mine;
        if (ts != NULL) {
            if (!int_in(ts, 0, MAX_TS_MS, &time_value))
                goto not_mine;
        } else {
            if (!has_up || !int_in(up, 0, MAX_UP_MS, &time_value))
                goto not_mine;
            uptime_only = 1;
        }
        done = fields_of(&metrics, seq_value, boot, &part);  /* metrics: a new reference when done */
        if (done < 0)
            goto error;
        if (done == 0)
            goto not_mine;
        PyTuple_SET_ITEM(fields, i, part);
        items[0] = Py_NewRef(seq);
        items[1] = Py_NewRef(ts ? ts : Py_None);
        items[2] = Py_NewRef(ts ? Py_None : up);
        items[3] = metrics;
        items[4] = Py_NewRef(sensor ? sensor : Py_None);
        reading = named(reading_type, items, 5);
        if (reading == NULL)
            goto error;
        PyTuple_SET_ITEM(readings, i, reading);
    }
    items[0] = readings;
    items[1] = fields;
    items[2] = Py_NewRef(uptime_only ? Py_True : Py_False);
    return named(decoded_type, items, 3);
not_mine:
    Py_DECREF(readings);
    Py_DECREF(fields);
    Py_RETURN_NONE;
error:
    Py_XDECREF(readings);
    Py_XDECREF(fields);
    return NULL;
}


/* readings(raw, envelope_up, boot) -> Decoded | None: readings.fast_readings. */
PyObject *fp_readings(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long boot;
    if (nargs != 3 || reading_type == NULL) {
        PyErr_SetString(PyExc_TypeError, "readings(raw, envelope_up, boot), after setup()");
        return NULL;
    }
    if (!int_in(args[2], 0, U32_MAX, &boot))
        Py_RETURN_NONE;
    return decode_readings(args[0], args[1] != Py_None, boot);
}
