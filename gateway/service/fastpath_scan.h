/* fastpath_scan.c's records and readers, for fastpath_message.c. */
#ifndef SEN_FASTPATH_SCAN_H
#define SEN_FASTPATH_SCAN_H
#include "fastpath.h"

#define MAX_STRING 64  /* the longest string read: a metric name, a diag string */

typedef struct {
    const char *at, *end;
} Scan;

typedef struct {  /* a string's bytes, in the message */
    const char *text;
    Py_ssize_t len;
} Text;

typedef struct {
    int whole;  /* an integer: no fraction, no exponent */
    long long integer;
    double value;  /* the number as a double (an integer's as float(int)) */
} Number;

typedef struct {
    Text name;
    double value;
} Metric;

typedef struct {  /* one reading */
    long long seq, time;  /* time: its ts, or its up when it has no ts */
    int has_ts;
    Text sensor;  /* text NULL: no s */
    Py_ssize_t first, count;  /* its metrics: the message's metric[first .. first + count) */
} Raw;

int next_is(Scan *s, char c);
int at_end(Scan *s);
int string(Scan *s, Text *out);
int key(Scan *s, Text *out);
int literal(Scan *s, const char *word, size_t n);
#define LITERAL(s, word) literal(s, word, sizeof(word) - 1)

/* The text is word (a string literal). */
#define IS(t, word) ((t)->len == sizeof(word) - 1 && memcmp((t)->text, word, sizeof(word) - 1) == 0)
int number(Scan *s, Number *out);
int integer(Scan *s, long long low, long long high, long long *out);
int readings(Scan *s, Raw *raws, Py_ssize_t room, Py_ssize_t *count, Metric *metric, Py_ssize_t metric_room);

#endif
