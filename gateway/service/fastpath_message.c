/* message(payload, site, device) -> Telemetry | None: decode.decode_telemetry for the common
 * message, read straight from its bytes by fastpath_scan.c. No JSON object is made for it (orjson
 * makes a dict per reading and per m, which decoding then reads again): only the Telemetry, its
 * readings and diag; and, when every reading has its ts, the readings' lines as points makes them
 * (Telemetry.lines: lines, newest time, each sensor's newest), since they need no clock anchor.
 * None (not mine) whenever fastpath_scan.c says so; decode.py then decodes the message as before.
 * tests/unit/test_fastpath_message.py holds the two to the same result. */
#include "fastpath_scan.h"

#define HEAD_MAX (64 + 4 * MAX_SENSOR)  /* "telemetry,board=..,device=..,sensor=..,site=.." */

static PyObject *names[256];  /* names come again and again: each str made once */

static PyObject *name_str(const Text *t)
{
    unsigned hash = 2166136261u;
    Py_ssize_t i;
    PyObject **slot, *found;
    for (i = 0; i < t->len; i++)
        hash = (hash ^ (unsigned char)t->text[i]) * 16777619u;
    slot = &names[hash & 255];
    found = *slot;
    if (found != NULL && PyUnicode_GET_LENGTH(found) == t->len
        && memcmp(PyUnicode_1BYTE_DATA(found), t->text, t->len) == 0)
        return Py_NewRef(found);
    found = ascii_str(t->text, t->len);
    if (found != NULL)
        Py_XSETREF(*slot, Py_NewRef(found));
    return found;
}

/* dict[name] = value, both stolen; either NULL (an error is set) or a failed set: -1. */
static int set_item(PyObject *dict, PyObject *name, PyObject *value)
{
    int failed = name == NULL || value == NULL || PyDict_SetItem(dict, name, value) < 0;
    Py_XDECREF(name);
    Py_XDECREF(value);
    return failed ? -1 : 0;
}

/* The envelope's d as decode._diag makes it: a new dict; NULL: not mine, or an error is set. */
static PyObject *diag(Scan *s)
{
    PyObject *out = PyDict_New(), *value;
    Text key_text, text;
    Number n;
    if (out == NULL)
        return NULL;
    if (!next_is(s, '{'))
        goto not_mine;
    if (next_is(s, '}'))
        return out;
    do {
        Py_ssize_t size = PyDict_GET_SIZE(out);
        if (!key(s, &key_text) || !metric_text(key_text.text, key_text.len, 0))
            goto not_mine;
        if (LITERAL(s, "true"))
            value = Py_NewRef(Py_True);
        else if (LITERAL(s, "false"))
            value = Py_NewRef(Py_False);
        else if (string(s, &text))  /* printable ASCII, at most 64: what decode._diag takes */
            value = ascii_str(text.text, text.len);
        else if (number(s, &n))
            value = PyFloat_FromDouble(n.value);
        else
            goto not_mine;
        if (set_item(out, value ? name_str(&key_text) : NULL, value) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        if (PyDict_GET_SIZE(out) == size)  /* a key twice */
            goto not_mine;
    } while (next_is(s, ','));
    if (next_is(s, '}'))
        return out;
not_mine:
    Py_DECREF(out);
    return NULL;
}

typedef struct {  /* what the envelope said */
    long long v, boot, fid, up, lo, ob;  /* -1: absent */
    Text dev, board;  /* board.text NULL: absent */
    PyObject *diag;
    Raw *raws;
    Py_ssize_t n;
    Metric *metric;
} Envelope;

enum { V, DEV, BOOT, FID, UP, LO, OB, BOARD, R, D, UNKNOWN };
#define NEEDED ((1u << V) | (1u << DEV) | (1u << BOOT) | (1u << R))

static unsigned envelope_key(const Text *name)
{
    switch (name->len) {
    case 1:
        return IS(name, "v") ? V : IS(name, "r") ? R : IS(name, "d") ? D : UNKNOWN;
    case 2:
        return IS(name, "up") ? UP : IS(name, "lo") ? LO : IS(name, "ob") ? OB : UNKNOWN;
    case 3:
        return IS(name, "dev") ? DEV : IS(name, "fid") ? FID : UNKNOWN;
    default:
        return IS(name, "boot") ? BOOT : IS(name, "board") ? BOARD : UNKNOWN;
    }
}

/* The envelope, each key once; 0: not mine (or an error is set). */
static int envelope(Scan *s, Envelope *e, Py_ssize_t room, Py_ssize_t metric_room)
{
    unsigned seen = 0;
    Text name;
    if (!next_is(s, '{'))
        return 0;
    do {
        unsigned i;
        int ok;
        if (!key(s, &name) || (i = envelope_key(&name)) == UNKNOWN || seen & (1u << i))
            return 0;
        seen |= 1u << i;
        switch (i) {
        case V: ok = integer(s, 1, 1, &e->v); break;
        case DEV: ok = string(s, &e->dev); break;
        case BOOT: ok = integer(s, 0, U32_MAX, &e->boot); break;
        case FID: ok = integer(s, 0, U32_MAX, &e->fid); break;
        case UP: ok = integer(s, 0, MAX_UP_MS, &e->up); break;
        case LO: ok = integer(s, 0, U32_MAX, &e->lo); break;
        case OB: ok = integer(s, 0, U32_MAX, &e->ob); break;
        case BOARD: ok = string(s, &e->board) && name_text(e->board.text, e->board.len); break;
        case R: ok = readings(s, e->raws, room, &e->n, e->metric, metric_room); break;
        default: ok = (e->diag = diag(s)) != NULL; break;
        }
        if (!ok)
            return 0;
    } while (next_is(s, ','));
    return next_is(s, '}') && at_end(s) && (seen & NEEDED) == NEEDED;
}

/* One reading's Reading, and its fields part into text (its end into *end). */
static PyObject *reading_of(const Raw *raw, const Metric *metric, long long boot, char *text, char **end)
{
    Part parts[MAX_METRICS + 2];
    double values[MAX_METRICS];
    PyObject *metrics = PyDict_New(), *items[5];
    Py_ssize_t j;
    if (metrics == NULL)
        return NULL;
    for (j = 0; j < raw->count; j++) {
        const Metric *m = &metric[raw->first + j];
        PyObject *name = name_str(&m->name);
        if (set_item(metrics, name, name ? PyFloat_FromDouble(m->value) : NULL) < 0) {
            Py_DECREF(metrics);
            return NULL;
        }
        values[j] = m->value;
        parts[j + 2] = (Part){m->name.text, m->name.len, (int)j};
    }
    *end = fields_text(text, parts, values, raw->count, raw->seq, boot);
    items[0] = PyLong_FromLongLong(raw->seq);
    items[1] = raw->has_ts ? PyLong_FromLongLong(raw->time) : Py_NewRef(Py_None);
    items[2] = raw->has_ts ? Py_NewRef(Py_None) : PyLong_FromLongLong(raw->time);
    items[3] = metrics;
    items[4] = raw->sensor.text ? name_str(&raw->sensor) : Py_NewRef(Py_None);
    if (*end == NULL || !items[0] || !items[1] || !items[2] || !items[4]) {
        for (j = 0; j < 5; j++)
            Py_XDECREF(items[j]);
        return NULL;
    }
    return named(reading_type, items, 5);
}

/* "telemetry,board=B,device=D[,sensor=S],site=X <fields> <ts>", as points._head and the line
 * loop write it; head: "telemetry,board=B,device=D", with room for the rest (HEAD_MAX). */
static PyObject *line_of(char *head, Py_ssize_t head_len, const Text *sensor, const Text *site, const char *fields,
                         Py_ssize_t fields_len, long long ts)
{
    char *at = head + head_len;
    if (sensor->text) {
        at = put(at, ",sensor=", 8);
        at = put(at, sensor->text, sensor->len);
    }
    at = put(at, ",site=", 6);
    at = put(at, site->text, site->len);
    return line_str(head, at - head, fields, fields_len, ts);
}

/* The readings (a tuple), and either their lines (every reading has its ts) or their fields. */
static int made(const Envelope *e, const Text *site, PyObject **readings_out, PyObject **lines_out,
                PyObject **fields_out)
{
    char head_text[HEAD_MAX], text[FIELDS_TEXT_MAX], *end, *at = head_text;
    Py_ssize_t i;
    int uptime_only = 0;
    PyObject *readings = PyTuple_New(e->n), *lines = NULL, *sensors = NULL, *fields = NULL, *newest = Py_None;
    long long newest_value = 0;
    Py_ssize_t head_len;
    Text board = e->board.text ? e->board : (Text){(const char *)PyUnicode_1BYTE_DATA(default_board),
                                                         PyUnicode_GET_LENGTH(default_board)};
    for (i = 0; i < e->n; i++)
        uptime_only |= !e->raws[i].has_ts;
    if (uptime_only)
        fields = PyTuple_New(e->n);
    else if ((lines = PyList_New(e->n)) != NULL)
        sensors = PyDict_New();
    if (readings == NULL || (uptime_only ? fields == NULL : sensors == NULL))
        goto error;
    at = put(at, "telemetry,board=", 16);
    at = put(at, board.text, board.len);
    at = put(at, ",device=", 8);
    at = put(at, e->dev.text, e->dev.len);
    head_len = at - head_text;
    for (i = 0; i < e->n; i++) {
        const Raw *raw = &e->raws[i];
        PyObject *reading = reading_of(raw, e->metric, e->boot, text, &end), *ts, *line;
        if (reading == NULL)
            goto error;
        PyTuple_SET_ITEM(readings, i, reading);
        if (uptime_only) {
            PyObject *part = ascii_str(text, end - text);
            if (part == NULL)
                goto error;
            PyTuple_SET_ITEM(fields, i, part);
            continue;
        }
        ts = PyTuple_GET_ITEM(reading, 1);
        if (newest == Py_None || raw->time > newest_value) {
            newest = ts;
            newest_value = raw->time;
        }
        if (raw->sensor.text) {
            PyObject *sensor = PyTuple_GET_ITEM(reading, 4), *known = PyDict_GetItemWithError(sensors, sensor);
            if ((known == NULL && PyErr_Occurred())
                || ((known == NULL || raw->time > PyLong_AsLongLong(known)) && PyDict_SetItem(sensors, sensor, ts) < 0))
                goto error;
        }
        line = line_of(head_text, head_len, &raw->sensor, site, text, end - text, raw->time);
        if (line == NULL)
            goto error;
        PyList_SET_ITEM(lines, i, line);
    }
    *readings_out = readings;
    *fields_out = uptime_only ? fields : Py_NewRef(Py_None);
    *lines_out = uptime_only ? NULL : Py_BuildValue("(NON)", lines, newest, sensors);
    if (uptime_only || *lines_out != NULL)
        return 1;
    Py_DECREF(readings);
    Py_DECREF(*fields_out);
    return 0;
error:
    Py_XDECREF(readings);
    Py_XDECREF(lines);
    Py_XDECREF(sensors);
    Py_XDECREF(fields);
    return 0;
}

/* message(payload, site, device) -> Telemetry | None; site, device: the topic's. */
PyObject *fp_message(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *payload, *board, *readings, *lines, *fields, *out = NULL;
    Py_ssize_t size, room, metric_room, device_len = 0;
    Text site;
    const char *device_text;
    Scan s;
    Envelope e = {.v = -1, .boot = -1, .fid = -1, .up = -1, .lo = -1, .ob = -1};
    Py_ssize_t i;

    if (nargs != 3 || telemetry_type == NULL || reading_type == NULL) {
        PyErr_SetString(PyExc_TypeError, "message(payload, site, device), after setup() and setup_telemetry()");
        return NULL;
    }
    payload = args[0];
    site.text = ascii(args[1], &site.len);
    device_text = ascii(args[2], &device_len);
    if (!PyBytes_CheckExact(payload) || site.text == NULL
        || !name_text(site.text, site.len) || device_text == NULL || !name_text(device_text, device_len)
        || !PyUnicode_IS_ASCII(default_board))
        Py_RETURN_NONE;
    size = PyBytes_GET_SIZE(payload);  /* decode.py has checked it against MAX_MESSAGE_BYTES */
    room = size / 23 + 1;  /* the shortest reading: {"seq":0,"ts":0,"m":{}} */
    metric_room = size / 5 + 1;  /* the shortest metric: "a":0 */
    e.raws = PyMem_Malloc(room * sizeof(Raw) + metric_room * sizeof(Metric));
    if (e.raws == NULL)
        return PyErr_NoMemory();
    e.metric = (Metric *)(e.raws + room);
    s.at = PyBytes_AS_STRING(payload);
    s.end = s.at + size;
    if (!envelope(&s, &e, room, metric_room) || e.dev.len != device_len
        || memcmp(e.dev.text, device_text, device_len) != 0)
        goto done;
    for (i = 0; i < e.n; i++)
        if (!e.raws[i].has_ts && e.up < 0)  /* decode says: the envelope has no up */
            goto done;
    if (e.diag == NULL && (e.diag = PyDict_New()) == NULL)
        goto done;
    board = e.board.text ? name_str(&e.board) : Py_NewRef(default_board);
    if (board == NULL || !made(&e, &site, &readings, &lines, &fields)) {
        Py_XDECREF(board);
        goto done;
    }
    out = new_telemetry(args[1], args[2], board, e.boot, e.fid, e.up, e.lo, e.ob, readings, fields, e.diag,
                        fields == Py_None ? Py_False : Py_True, lines);
    Py_DECREF(board);
    Py_DECREF(readings);
    Py_DECREF(fields);
    Py_XDECREF(lines);
done:
    PyMem_Free(e.raws);
    Py_XDECREF(e.diag);
    if (out == NULL && !PyErr_Occurred())
        Py_RETURN_NONE;
    return out;
}
