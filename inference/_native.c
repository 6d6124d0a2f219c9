/* Compiled hot loops of the featurizer: tokenize, form n-grams, look them up, TF-IDF, L2.
 *
 * The reference implementation is the pure-Python path in inference/features.py; this module
 * must give the same rows bit for bit (tests/inference/test_native.py runs both on the training
 * corpus and on generated Unicode text). Build it with `python -m inference.native_build`
 * (`make install` does); without it the runtime uses the Python path.
 *
 * Semantics copied from the Python path (and so from scikit-learn):
 *  - word tokens are maximal runs of 2+ "word" characters, where a word character is what
 *    Python's `re` calls \w for str patterns: Py_UNICODE_ISALNUM(ch) or '_';
 *  - word n-grams are tokens joined by one space, in the order tokens, 2-grams, 3-grams, ...
 *    (order does not matter for the counts);
 *  - char n-grams slice the text after every run of 2+ whitespace characters (Py_UNICODE_ISSPACE,
 *    what `re`'s \s matches) became one space;
 *  - within a row, entries are sorted by column; values are count * idf, L2-normalised
 *    separately in the word block and the char block, summing squares in column order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static inline uint64_t fnv_step(uint64_t h, Py_UCS4 ch) {
    h ^= (uint64_t)ch;
    return h * FNV_PRIME;
}

typedef struct {
    uint64_t hash;
    int64_t offset; /* into FeatureIndex.cps */
    int32_t length; /* code points; negative for char terms, so a word and a char n-gram
                       with the same text ("018") are different keys */
    int32_t column; /* -1: empty slot */
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;
    Py_UCS4 *cps;
    double *idf;
    Py_ssize_t n_word;
    Py_ssize_t n_features;
    int word_min, word_max, char_min, char_max;
} FeatureIndex;

/* A span of code points in a text; a word n-gram is n spans joined by single spaces. */
typedef struct {
    Py_ssize_t start;
    Py_ssize_t length;
} Span;

typedef struct {
    int32_t *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
} IntVec;

static int intvec_push(IntVec *v, int32_t x) {
    if (v->size == v->capacity) {
        Py_ssize_t cap = v->capacity ? v->capacity * 2 : 256;
        int32_t *data = PyMem_Realloc(v->data, (size_t)cap * sizeof(int32_t));
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        v->data = data;
        v->capacity = cap;
    }
    v->data[v->size++] = x;
    return 0;
}

static void FeatureIndex_dealloc(FeatureIndex *self) {
    PyMem_Free(self->slots);
    PyMem_Free(self->cps);
    PyMem_Free(self->idf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Insert every term of `terms` (a sequence of str) with columns offset..offset+n-1. */
static int index_terms(FeatureIndex *self, PyObject *terms, Py_ssize_t offset, int sign,
                       Py_ssize_t *cp_at) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(terms);
    PyObject **items = PySequence_Fast_ITEMS(terms);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *term = items[i];
        if (!PyUnicode_Check(term)) {
            PyErr_SetString(PyExc_TypeError, "vocabulary terms must be str");
            return -1;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(term);
        int kind = PyUnicode_KIND(term);
        const void *data = PyUnicode_DATA(term);
        uint64_t h = FNV_OFFSET;
        for (Py_ssize_t k = 0; k < len; k++) {
            Py_UCS4 ch = PyUnicode_READ(kind, data, k);
            self->cps[*cp_at + k] = ch;
            h = fnv_step(h, ch);
        }
        int32_t key_length = sign * (int32_t)len;
        uint64_t at = h & self->mask;
        while (self->slots[at].column >= 0) {
            Slot *s = &self->slots[at];
            if (s->hash == h && s->length == key_length &&
                memcmp(self->cps + s->offset, self->cps + *cp_at, (size_t)len * sizeof(Py_UCS4)) == 0) {
                PyErr_Format(PyExc_ValueError, "duplicate vocabulary term %R", term);
                return -1;
            }
            at = (at + 1) & self->mask;
        }
        self->slots[at].hash = h;
        self->slots[at].offset = *cp_at;
        self->slots[at].length = key_length;
        self->slots[at].column = (int32_t)(offset + i);
        *cp_at += len;
    }
    return 0;
}

static Py_ssize_t total_length(PyObject *terms) {
    Py_ssize_t total = 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(terms);
    PyObject **items = PySequence_Fast_ITEMS(terms);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(items[i])) {
            PyErr_SetString(PyExc_TypeError, "vocabulary terms must be str");
            return -1;
        }
        total += PyUnicode_GET_LENGTH(items[i]);
    }
    return total;
}

static int FeatureIndex_init(FeatureIndex *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"word_terms", "char_terms", "idf", "word_ngram", "char_ngram", NULL};
    PyObject *word_obj, *char_obj;
    Py_buffer idf_buf;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOy*(ii)(ii)", kwlist, &word_obj, &char_obj,
                                     &idf_buf, &self->word_min, &self->word_max, &self->char_min,
                                     &self->char_max)) {
        return -1;
    }
    int status = -1;
    PyObject *words = PySequence_Fast(word_obj, "word_terms must be a sequence");
    PyObject *chars = words ? PySequence_Fast(char_obj, "char_terms must be a sequence") : NULL;
    if (chars == NULL) {
        goto done;
    }
    if (self->word_min < 1 || self->word_max < self->word_min || self->char_min < 1 ||
        self->char_max < self->char_min) {
        PyErr_SetString(PyExc_ValueError, "invalid n-gram ranges");
        goto done;
    }
    self->n_word = PySequence_Fast_GET_SIZE(words);
    self->n_features = self->n_word + PySequence_Fast_GET_SIZE(chars);
    if (self->n_features >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "vocabulary too large");
        goto done;
    }
    if (idf_buf.len != (Py_ssize_t)(self->n_features * sizeof(double))) {
        PyErr_SetString(PyExc_ValueError, "idf must hold one float64 per term");
        goto done;
    }
    Py_ssize_t word_cps = total_length(words);
    Py_ssize_t char_cps = word_cps < 0 ? -1 : total_length(chars);
    if (char_cps < 0) {
        goto done;
    }
    uint64_t size = 16;
    while (size < (uint64_t)self->n_features * 2 + 16) {
        size <<= 1;
    }
    PyMem_Free(self->slots);
    PyMem_Free(self->cps);
    PyMem_Free(self->idf);
    self->slots = PyMem_Malloc(size * sizeof(Slot));
    self->cps = PyMem_Malloc((size_t)(word_cps + char_cps + 1) * sizeof(Py_UCS4));
    self->idf = PyMem_Malloc((size_t)(self->n_features + 1) * sizeof(double));
    if (self->slots == NULL || self->cps == NULL || self->idf == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (uint64_t i = 0; i < size; i++) {
        self->slots[i].column = -1;
    }
    self->mask = size - 1;
    memcpy(self->idf, idf_buf.buf, (size_t)idf_buf.len);
    Py_ssize_t cp_at = 0;
    if (index_terms(self, words, 0, 1, &cp_at) < 0 ||
        index_terms(self, chars, self->n_word, -1, &cp_at) < 0) {
        goto done;
    }
    status = 0;
done:
    PyBuffer_Release(&idf_buf);
    Py_XDECREF(words);
    Py_XDECREF(chars);
    return status;
}

static inline int is_word_char(Py_UCS4 ch) { return ch == '_' || Py_UNICODE_ISALNUM(ch); }

/* Column of the word n-gram made of spans[0..n) of `text`, or -1. */
static int32_t lookup_words(const FeatureIndex *self, int kind, const void *text, const Span *spans,
                            int n) {
    uint64_t h = FNV_OFFSET;
    Py_ssize_t length = n - 1;
    for (int t = 0; t < n; t++) {
        if (t > 0) {
            h = fnv_step(h, ' ');
        }
        for (Py_ssize_t k = 0; k < spans[t].length; k++) {
            h = fnv_step(h, PyUnicode_READ(kind, text, spans[t].start + k));
        }
        length += spans[t].length;
    }
    for (uint64_t at = h & self->mask;; at = (at + 1) & self->mask) {
        const Slot *s = &self->slots[at];
        if (s->column < 0) {
            return -1;
        }
        if (s->hash != h || s->length != length) {
            continue;
        }
        const Py_UCS4 *cp = self->cps + s->offset;
        int same = 1;
        for (int t = 0; t < n && same; t++) {
            if (t > 0 && *cp++ != ' ') {
                same = 0;
                break;
            }
            for (Py_ssize_t k = 0; k < spans[t].length; k++) {
                if (*cp++ != PyUnicode_READ(kind, text, spans[t].start + k)) {
                    same = 0;
                    break;
                }
            }
        }
        if (same) {
            return s->column;
        }
    }
}

/* Column of the char n-gram chars[0..n), or -1. */
static int32_t lookup_chars(const FeatureIndex *self, const Py_UCS4 *chars, int n) {
    uint64_t h = FNV_OFFSET;
    for (int k = 0; k < n; k++) {
        h = fnv_step(h, chars[k]);
    }
    for (uint64_t at = h & self->mask;; at = (at + 1) & self->mask) {
        const Slot *s = &self->slots[at];
        if (s->column < 0) {
            return -1;
        }
        if (s->hash == h && s->length == -n &&
            memcmp(self->cps + s->offset, chars, (size_t)n * sizeof(Py_UCS4)) == 0) {
            return s->column;
        }
    }
}

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

typedef struct {
    Span *spans;
    Py_ssize_t spans_cap;
    Py_UCS4 *chars;
    Py_ssize_t chars_cap;
    IntVec ids;
} Scratch;

static void scratch_free(Scratch *s) {
    PyMem_Free(s->spans);
    PyMem_Free(s->chars);
    PyMem_Free(s->ids.data);
}

/* Append the known columns of every n-gram of `text` to s->ids (unsorted, with repeats). */
static int collect(const FeatureIndex *self, PyObject *text, Scratch *s) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (len + 1 > s->spans_cap) {
        PyMem_Free(s->spans);
        PyMem_Free(s->chars);
        s->spans_cap = len + 1;
        s->spans = PyMem_Malloc((size_t)s->spans_cap * sizeof(Span));
        s->chars = PyMem_Malloc((size_t)s->spans_cap * sizeof(Py_UCS4));
        s->chars_cap = s->spans_cap;
        if (s->spans == NULL || s->chars == NULL) {
            s->spans_cap = 0;
            PyErr_NoMemory();
            return -1;
        }
    }
    /* Word tokens. */
    Py_ssize_t n_tokens = 0;
    for (Py_ssize_t i = 0; i < len;) {
        if (!is_word_char(PyUnicode_READ(kind, data, i))) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < len && is_word_char(PyUnicode_READ(kind, data, i))) {
            i++;
        }
        if (i - start >= 2) {
            s->spans[n_tokens].start = start;
            s->spans[n_tokens].length = i - start;
            n_tokens++;
        }
    }
    for (int n = self->word_min; n <= self->word_max; n++) {
        for (Py_ssize_t t = 0; t + n <= n_tokens; t++) {
            int32_t col = lookup_words(self, kind, data, s->spans + t, n);
            if (col >= 0 && intvec_push(&s->ids, col) < 0) {
                return -1;
            }
        }
    }
    /* Char n-grams over the text with whitespace runs collapsed. */
    Py_ssize_t n_chars = 0;
    for (Py_ssize_t i = 0; i < len;) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (Py_UNICODE_ISSPACE(ch) && i + 1 < len &&
            Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i + 1))) {
            while (i < len && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) {
                i++;
            }
            s->chars[n_chars++] = ' ';
            continue;
        }
        s->chars[n_chars++] = ch;
        i++;
    }
    for (int n = self->char_min; n <= self->char_max; n++) {
        for (Py_ssize_t i = 0; i + n <= n_chars; i++) {
            int32_t col = lookup_chars(self, s->chars + i, n);
            if (col >= 0 && intvec_push(&s->ids, col) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* transform(texts) -> (rows, cols, vals): bytes of int64, int64, float64 (see module comment). */
static PyObject *FeatureIndex_transform(FeatureIndex *self, PyObject *arg) {
    PyObject *texts = PySequence_Fast(arg, "texts must be a sequence of str");
    if (texts == NULL) {
        return NULL;
    }
    Py_ssize_t n_texts = PySequence_Fast_GET_SIZE(texts);
    PyObject **items = PySequence_Fast_ITEMS(texts);
    Scratch s = {0};
    int64_t *rows = NULL, *cols = NULL;
    double *vals = NULL;
    Py_ssize_t size = 0, cap = 0;
    PyObject *result = NULL;
    for (Py_ssize_t r = 0; r < n_texts; r++) {
        if (!PyUnicode_Check(items[r])) {
            PyErr_Format(PyExc_TypeError, "texts[%zd] is not a str", r);
            goto done;
        }
        s.ids.size = 0;
        if (collect(self, items[r], &s) < 0) {
            goto done;
        }
        if (s.ids.size == 0) {
            continue;
        }
        qsort(s.ids.data, (size_t)s.ids.size, sizeof(int32_t), compare_int32);
        if (size + s.ids.size > cap) {
            Py_ssize_t new_cap = cap ? cap : 1024;
            while (new_cap < size + s.ids.size) {
                new_cap *= 2;
            }
            int64_t *new_rows = PyMem_Realloc(rows, (size_t)new_cap * sizeof(int64_t));
            if (new_rows != NULL) {
                rows = new_rows;
            }
            int64_t *new_cols = PyMem_Realloc(cols, (size_t)new_cap * sizeof(int64_t));
            if (new_cols != NULL) {
                cols = new_cols;
            }
            double *new_vals = PyMem_Realloc(vals, (size_t)new_cap * sizeof(double));
            if (new_vals != NULL) {
                vals = new_vals;
            }
            if (new_rows == NULL || new_cols == NULL || new_vals == NULL) {
                PyErr_NoMemory();
                goto done;
            }
            cap = new_cap;
        }
        Py_ssize_t first = size;
        for (Py_ssize_t i = 0; i < s.ids.size;) {
            int32_t col = s.ids.data[i];
            Py_ssize_t j = i;
            while (j < s.ids.size && s.ids.data[j] == col) {
                j++;
            }
            rows[size] = r;
            cols[size] = col;
            vals[size] = (double)(j - i) * self->idf[col];
            size++;
            i = j;
        }
        /* L2 per block; squares summed in column order (as np.bincount does). */
        double word_sq = 0.0, char_sq = 0.0;
        for (Py_ssize_t i = first; i < size; i++) {
            if (cols[i] < self->n_word) {
                word_sq += vals[i] * vals[i];
            } else {
                char_sq += vals[i] * vals[i];
            }
        }
        double word_norm = sqrt(word_sq), char_norm = sqrt(char_sq);
        for (Py_ssize_t i = first; i < size; i++) {
            vals[i] /= cols[i] < self->n_word ? word_norm : char_norm;
        }
    }
    /* y# turns a NULL pointer into None; an empty batch must still give three bytes objects. */
    result = Py_BuildValue("(y#y#y#)", rows ? (const char *)rows : "",
                           size * (Py_ssize_t)sizeof(int64_t), cols ? (const char *)cols : "",
                           size * (Py_ssize_t)sizeof(int64_t), vals ? (const char *)vals : "",
                           size * (Py_ssize_t)sizeof(double));
done:
    scratch_free(&s);
    PyMem_Free(rows);
    PyMem_Free(cols);
    PyMem_Free(vals);
    Py_DECREF(texts);
    return result;
}

static PyMethodDef FeatureIndex_methods[] = {
    {"transform", (PyCFunction)FeatureIndex_transform, METH_O,
     "transform(texts) -> (rows, cols, vals) as bytes of int64, int64, float64."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FeatureIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "inference._native.FeatureIndex",
    .tp_basicsize = sizeof(FeatureIndex),
    .tp_dealloc = (destructor)FeatureIndex_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "FeatureIndex(word_terms, char_terms, idf, word_ngram, char_ngram)",
    .tp_methods = FeatureIndex_methods,
    .tp_init = (initproc)FeatureIndex_init,
    .tp_new = PyType_GenericNew,
};


/* ---- anomaly statistics, fast path for plain ASCII feedback ---------------------------------
 *
 * analyse_ascii(text) computes the counts of inference.anomaly.stats.analyse for texts on which
 * that function's optional steps do nothing: ASCII, at most max_chars characters, no control
 * character, no '@' (e-mails, handles), no '/' (links, chat links), fewer than 10 digits (phone
 * numbers) and no '.' that could start a bare domain. It returns None for any other text, which
 * then takes the Python path. tests/inference/test_native.py compares both on every text.
 */

static inline int ascii_alnum(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static inline int ascii_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static inline int ascii_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static inline int ascii_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static inline int ascii_vowel(unsigned char c) {
    switch (c | 0x20) {
    case 'a': case 'e': case 'i': case 'o': case 'u': case 'y':
        return 1;
    default:
        return 0;
    }
}

/* Whether the '.' at `dot` (>= 1) could start a bare domain (stats._may_have_url). */
static inline int domain_dot(const unsigned char *t, Py_ssize_t len, Py_ssize_t dot) {
    unsigned char before = t[dot - 1];
    return (ascii_alnum(before) || before == '-') && dot + 1 < len && ascii_alpha(t[dot + 1]);
}

static PyObject *analyse_ascii(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "analyse_ascii(text: str, max_chars: int)");
        return NULL;
    }
    PyObject *text = args[0];
    Py_ssize_t max_chars = PyLong_AsSsize_t(args[1]);
    if (max_chars == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    if (!PyUnicode_IS_ASCII(text) || len > max_chars) {
        Py_RETURN_NONE;
    }
    const unsigned char *t = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t nonspace = 0, letters = 0, upper = 0, digits = 0, vowels = 0, exclaims = 0;
    Py_ssize_t max_run = 0, run = 0;
    int prev = -1;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = t[i];
        if (c < 0x20 ? (c != '\t' && c != '\n' && c != '\r') : c == 0x7f) {
            Py_RETURN_NONE; /* control characters: clean_text rewrites them */
        }
        if (c == '@' || c == '/') {
            Py_RETURN_NONE;
        }
        if (c == '.' && i >= 1 && domain_dot(t, len, i)) {
            Py_RETURN_NONE;
        }
        if ((c | 0x20) == 'w' && i + 3 < len && (t[i + 1] | 0x20) == 'w' &&
            (t[i + 2] | 0x20) == 'w' && t[i + 3] == '.') {
            Py_RETURN_NONE;
        }
        if (ascii_space(c)) {
            continue;
        }
        nonspace++;
        if (c >= '0' && c <= '9') {
            if (++digits >= 10) {
                Py_RETURN_NONE;
            }
        } else if (ascii_alpha(c)) {
            letters++;
            upper += ascii_upper(c);
            vowels += ascii_vowel(c);
        } else if (c == '!') {
            exclaims++;
        }
        /* Longest run of one character in the text without its whitespace. */
        run = (c == prev) ? run + 1 : 1;
        prev = c;
        if (run > max_run) {
            max_run = run;
        }
    }

    PyObject *tokens = PyList_New(0), *alpha = PyList_New(0), *counts = PyDict_New();
    PyObject *result = NULL, *bigrams = NULL;
    if (tokens == NULL || alpha == NULL || counts == NULL) {
        goto done;
    }
    Py_ssize_t caps_words = 0, max_token_len = 0, top = 0;
    for (Py_ssize_t i = 0; i < len;) {
        if (!ascii_alnum(t[i])) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < len && ascii_alnum(t[i])) {
            i++;
        }
        if (i + 1 < len && t[i] == '\'' && ascii_alnum(t[i + 1])) {
            i++;
            while (i < len && ascii_alnum(t[i])) {
                i++;
            }
        }
        Py_ssize_t n = i - start;
        PyObject *token = PyUnicode_New(n, 127);
        if (token == NULL) {
            goto done;
        }
        unsigned char *out = PyUnicode_1BYTE_DATA(token);
        int all_alpha = 1, all_upper = 1;
        for (Py_ssize_t k = 0; k < n; k++) {
            unsigned char c = t[start + k];
            all_alpha &= ascii_alpha(c);
            all_upper &= ascii_upper(c);
            out[k] = (unsigned char)(ascii_upper(c) ? c | 0x20 : c);
        }
        caps_words += (n >= 2 && all_upper);
        if (n > max_token_len) {
            max_token_len = n;
        }
        PyObject *seen = PyDict_GetItemWithError(counts, token);
        Py_ssize_t count = seen ? PyLong_AsSsize_t(seen) + 1 : 1;
        PyObject *count_obj = (seen || !PyErr_Occurred()) ? PyLong_FromSsize_t(count) : NULL;
        int failed = count_obj == NULL || PyDict_SetItem(counts, token, count_obj) < 0 ||
                     PyList_Append(tokens, token) < 0 || (all_alpha && PyList_Append(alpha, token) < 0);
        Py_XDECREF(count_obj);
        Py_DECREF(token);
        if (failed) {
            goto done;
        }
        if (count > top) {
            top = count;
        }
    }
    Py_ssize_t n_tokens = PyList_GET_SIZE(tokens);
    Py_ssize_t n_unique = PyDict_GET_SIZE(counts);
    if (upper < 2) {
        caps_words = 0; /* as in stats.analyse: not counted below two capitals */
    }
    Py_ssize_t best_same = 1;
    if (top >= 5) {
        Py_ssize_t same = 0;
        best_same = 0;
        for (Py_ssize_t i = 0; i < n_tokens; i++) {
            PyObject *a = PyList_GET_ITEM(tokens, i);
            int eq = i > 0 ? PyUnicode_Compare(a, PyList_GET_ITEM(tokens, i - 1)) == 0 : 0;
            same = eq ? same + 1 : 1;
            if (same > best_same) {
                best_same = same;
            }
        }
    }
    double repeated_bigrams = 0.0;
    if (n_unique < n_tokens) {
        bigrams = PySet_New(NULL);
        if (bigrams == NULL) {
            goto done;
        }
        for (Py_ssize_t i = 0; i + 1 < n_tokens; i++) {
            PyObject *pair = PyTuple_Pack(2, PyList_GET_ITEM(tokens, i), PyList_GET_ITEM(tokens, i + 1));
            int failed = pair == NULL || PySet_Add(bigrams, pair) < 0;
            Py_XDECREF(pair);
            if (failed) {
                goto done;
            }
        }
        repeated_bigrams = 1.0 - (double)PySet_GET_SIZE(bigrams) / (double)(n_tokens - 1);
    }
    PyObject *token_tuple = PyList_AsTuple(tokens);
    PyObject *alpha_tuple = token_tuple ? PyList_AsTuple(alpha) : NULL;
    if (alpha_tuple != NULL) {
        result = Py_BuildValue("(nnnnnNnnNnnnnnd)", nonspace, letters, upper, digits, vowels,
                               token_tuple, n_unique, max_token_len, alpha_tuple, max_run,
                               n_tokens ? top : 0, best_same, exclaims, caps_words,
                               repeated_bigrams);
    } else {
        Py_XDECREF(token_tuple);
    }
done:
    Py_XDECREF(tokens);
    Py_XDECREF(alpha);
    Py_XDECREF(counts);
    Py_XDECREF(bigrams);
    return result;
}

static PyMethodDef native_functions[] = {
    {"analyse_ascii", (PyCFunction)(void (*)(void))analyse_ascii, METH_FASTCALL,
     "analyse_ascii(text, max_chars) -> tuple of counts, or None outside the fast path."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "inference._native", "Compiled featurizer and text-statistics loops.", -1,
    native_functions,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&FeatureIndexType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "FeatureIndex", (PyObject *)&FeatureIndexType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyModule_AddIntConstant(module, "ABI", 2) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
