/* What the files of the _fastpath module share (fastpath.c says what the module is). */
#ifndef SEN_FASTPATH_H
#define SEN_FASTPATH_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#define U32_MAX 4294967295LL
#define MAX_UP_MS (1LL << 42)
#define MAX_TS_MS 4102444800000LL
#define MAX_METRICS 32
#define MAX_NAME 64
#define MAX_SENSOR 32

extern PyObject *key_seq, *key_m, *key_s, *key_ts, *key_up;  /* interned: the reading's keys */
extern PyTypeObject *reading_type, *decoded_type;  /* set by setup() */
extern PyTypeObject *telemetry_type, *bootkey_type;  /* set by setup_telemetry() */
extern PyObject *default_board;
int envelope_keys(void);

typedef struct {  /* one field of a reading's fields part */
    const char *name;
    Py_ssize_t len;
    int index;  /* -2: boot, -1: seq, else the metric's */
} Part;
#define FIELDS_TEXT_MAX ((MAX_NAME + 32) * (MAX_METRICS + 2))
char *fields_text(char *at, Part *parts, const double *values, Py_ssize_t count, long long seq, long long boot);

PyObject *fp_readings(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *fp_telemetry(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *decode_readings(PyObject *raw, int has_up, long long boot);
int sensor_name(PyObject *name);  /* topics.NAME_RE */
int name_text(const char *text, Py_ssize_t len);  /* the same, of bytes */
const char *metric_name(PyObject *name, Py_ssize_t *len, int reserved_too);
int metric_text(const char *text, Py_ssize_t len, int reserved_too);
PyObject *new_telemetry(PyObject *site, PyObject *dev, PyObject *board, long long boot, long long fid,
                        long long up, long long lo, long long ob, PyObject *readings, PyObject *fields,
                        PyObject *diag, PyObject *uptime_only, PyObject *lines);
PyObject *fp_message(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *named(PyTypeObject *type, PyObject **items, Py_ssize_t n);
PyObject *fp_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* A str of ASCII only: its bytes and length, else NULL. */
static inline const char *ascii(PyObject *text, Py_ssize_t *len)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text))
        return NULL;
    *len = PyUnicode_GET_LENGTH(text);
    return (const char *)PyUnicode_DATA(text);
}


/* An int object in [low, high], into *out. */
static inline int int_in(PyObject *value, long long low, long long high, long long *out)
{
    int overflow;
    long long v;
    if (value == NULL || !PyLong_CheckExact(value))
        return 0;
    v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (v < low || v > high)
        return 0;
    *out = v;
    return 1;
}

/* A new str of the ASCII text. */
static inline PyObject *ascii_str(const char *text, Py_ssize_t len)
{
    PyObject *out = PyUnicode_New(len, 127);
    if (out != NULL)
        memcpy(PyUnicode_1BYTE_DATA(out), text, len);
    return out;
}

static inline char *put(char *at, const char *text, Py_ssize_t len)
{
    memcpy(at, text, len);
    return at + len;
}

static inline char *put_int(char *at, long long value)
{
    char digits[24];
    int n = 0;
    unsigned long long v = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    if (value < 0)
        *at++ = '-';
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *at++ = digits[--n];
    return at;
}

/* "HEAD PART TS": a line of line protocol, as points' line loop writes it. */
static inline PyObject *line_str(const char *head, Py_ssize_t head_len, const char *part, Py_ssize_t part_len,
                                 long long ts)
{
    char digits[24], *at;
    Py_ssize_t digits_len = put_int(digits, ts) - digits;
    PyObject *line = PyUnicode_New(head_len + part_len + 2 + digits_len, 127);
    if (line == NULL)
        return NULL;
    at = put((char *)PyUnicode_1BYTE_DATA(line), head, head_len);
    *at++ = ' ';
    at = put(at, part, part_len);
    *at++ = ' ';
    put(at, digits, digits_len);
    return line;
}

#endif
