/* The reading of a telemetry message's bytes for message() (fastpath_message.c): a strict part of
 * JSON, the part boards write, into plain C records, no Python object made. Anything else is "not
 * mine" (0): a string with an escape or a character outside printable ASCII or longer than 64, a
 * key read twice or not known here, a number of more than 18 digits where an integer is wanted,
 * null, nesting other than the envelope's, a value out of its range or a name the schema
 * refuses. orjson and decode.py then read the message and, when it is wrong, say why. */
#include "fastpath_scan.h"

static inline void skip_space(Scan *s)
{
    while (s->at < s->end && (*s->at == ' ' || *s->at == '\n' || *s->at == '\r' || *s->at == '\t'))
        s->at++;
}

/* Steps over c, after white space, when it comes next. */
int next_is(Scan *s, char c)
{
    skip_space(s);
    if (s->at < s->end && *s->at == c) {
        s->at++;
        return 1;
    }
    return 0;
}

/* The end is white space only. */
int at_end(Scan *s)
{
    skip_space(s);
    return s->at == s->end;
}

/* A string of printable ASCII without escapes, at most MAX_STRING long: its bytes. */
int string(Scan *s, Text *out)
{
    const unsigned char *p;
    if (!next_is(s, '"'))
        return 0;
    for (p = (const unsigned char *)s->at; p < (const unsigned char *)s->end && *p != '"'; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '\\')
            return 0;
    if (p == (const unsigned char *)s->end || (const char *)p - s->at > MAX_STRING)
        return 0;
    out->text = s->at;
    out->len = (const char *)p - s->at;
    s->at = (const char *)p + 1;
    return 1;
}

/* An object's key and its colon. */
int key(Scan *s, Text *out)
{
    return string(s, out) && next_is(s, ':');
}

int literal(Scan *s, const char *word, size_t n)
{
    skip_space(s);
    if ((size_t)(s->end - s->at) < n || memcmp(s->at, word, n) != 0)
        return 0;
    s->at += n;
    return 1;
}

static const double tens[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                              1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* A JSON number: an integer (no fraction, no exponent) of at most 18 digits, or a finite double
 * read as orjson reads it (correctly rounded). */
int number(Scan *s, Number *out)
{
    const char *p, *start;
    unsigned long long mantissa = 0;
    int digits = 0, decimals = 0, exponent = 0, negative = 0, fraction = 0;
    skip_space(s);
    p = start = s->at;
    if (p < s->end && *p == '-') {
        negative = 1;
        p++;
    }
    if (!is_digit(p, s->end) || (*p == '0' && is_digit(p + 1, s->end)))  /* none, or a leading zero */
        return 0;
    for (; is_digit(p, s->end); p++, digits++)
        if (digits < 19)
            mantissa = mantissa * 10 + (unsigned)(*p - '0');
    if (p < s->end && *p == '.') {
        fraction = 1;
        if (!is_digit(++p, s->end))
            return 0;
        for (; is_digit(p, s->end); p++, digits++, decimals++)
            if (digits < 19)
                mantissa = mantissa * 10 + (unsigned)(*p - '0');
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        int sign = 1, n = 0;
        fraction = 1;
        p++;
        if (p < s->end && (*p == '+' || *p == '-'))
            sign = *p++ == '-' ? -1 : 1;
        if (!is_digit(p, s->end))
            return 0;
        for (; is_digit(p, s->end); p++)
            if (++n > 4)
                return 0;
            else
                exponent = exponent * 10 + (*p - '0');
        exponent *= sign;
    }
    s->at = p;
    out->whole = !fraction;
    if (!fraction) {
        if (digits > 18)
            return 0;
        out->integer = negative ? -(long long)mantissa : (long long)mantissa;
        out->value = (double)out->integer;
        return 1;
    }
    exponent -= decimals;
    if (digits <= 19 && mantissa <= (1ULL << 53) && exponent >= -22 && exponent <= 22) {
        /* both exact: one IEEE operation rounds correctly */
        out->value = exponent < 0 ? (double)mantissa / tens[-exponent] : (double)mantissa * tens[exponent];
        if (negative)
            out->value = -out->value;
    } else {
        char *end;
        out->value = PyOS_string_to_double(start, &end, NULL);  /* the bytes end in NUL */
        if (out->value == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        if (end != p)
            return 0;
    }
    return isfinite(out->value);
}

/* An integer number in [low, high]. */
int integer(Scan *s, long long low, long long high, long long *out)
{
    Number n;
    if (!number(s, &n) || !n.whole || n.integer < low || n.integer > high)
        return 0;
    *out = n.integer;
    return 1;
}

/* A reading's m: metric names (not reserved) to numbers, at most MAX_METRICS, each once. */
static int metrics(Scan *s, Metric *metric, Py_ssize_t room, Py_ssize_t *count)
{
    Py_ssize_t i;
    *count = 0;
    if (!next_is(s, '{'))
        return 0;
    if (next_is(s, '}'))
        return 1;
    do {
        Metric *m = &metric[*count];
        Number n;
        if (*count == room || *count == MAX_METRICS || !key(s, &m->name)
            || !metric_text(m->name.text, m->name.len, 1) || !number(s, &n))
            return 0;
        for (i = 0; i < *count; i++)
            if (metric[i].name.len == m->name.len && memcmp(metric[i].name.text, m->name.text, m->name.len) == 0)
                return 0;
        m->value = n.value;  /* an integer as float(int) makes it */
        (*count)++;
    } while (next_is(s, ','));
    return next_is(s, '}');
}

enum { SEQ = 1, TS = 2, UP = 4, M = 8, S = 16 };

/* One reading: seq, m, exactly one of ts and up, and s when it has a sensor; nothing else. */
static int reading(Scan *s, Raw *raw, Metric *metric, Py_ssize_t room, Py_ssize_t *used)
{
    unsigned seen = 0, bit;
    Text name;
    raw->sensor.text = NULL;
    if (!next_is(s, '{'))
        return 0;
    do {
        if (!key(s, &name))
            return 0;
        if (IS(&name, "seq")) {
            bit = SEQ;
            if (!integer(s, 0, U32_MAX, &raw->seq))
                return 0;
        } else if (IS(&name, "ts") || IS(&name, "up")) {
            bit = name.text[0] == 't' ? TS : UP;
            if (!integer(s, 0, bit == TS ? MAX_TS_MS : MAX_UP_MS, &raw->time))
                return 0;
        } else if (IS(&name, "m")) {
            bit = M;
            raw->first = *used;
            if (!metrics(s, metric + *used, room - *used, &raw->count))
                return 0;
            *used += raw->count;
        } else if (IS(&name, "s")) {
            bit = S;
            if (!string(s, &raw->sensor) || !name_text(raw->sensor.text, raw->sensor.len))
                return 0;
        } else {
            return 0;
        }
        if (seen & bit)
            return 0;
        seen |= bit;
    } while (next_is(s, ','));
    raw->has_ts = (seen & TS) != 0;
    return next_is(s, '}') && (seen & (SEQ | M)) == (SEQ | M) && !(seen & TS) != !(seen & UP);
}

/* The envelope's r: its readings into raws (at most room), their metrics into metric. */
int readings(Scan *s, Raw *raws, Py_ssize_t room, Py_ssize_t *count, Metric *metric, Py_ssize_t metric_room)
{
    Py_ssize_t used = 0;
    *count = 0;
    if (!next_is(s, '['))
        return 0;
    if (next_is(s, ']'))
        return 1;
    do {
        if (*count == room || !reading(s, &raws[*count], metric, metric_room, &used))
            return 0;
        (*count)++;
    } while (next_is(s, ','));
    return next_is(s, ']');
}
