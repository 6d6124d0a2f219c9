/* Compiled hot loops of the inference runtime, each with a pure-Python reference that it must
 * match exactly (tests/inference/test_native.py runs both on the training corpus and on generated
 * text). Build it with `python -m inference.native_build` (`make install` does); without it the
 * runtime uses the Python paths. Three parts:
 *  - FeatureIndex: the featurizer (tokenize, form n-grams, look them up, TF-IDF, L2); reference
 *    inference/features.py, rows bit for bit;
 *  - analyse_ascii and Screen: the anomaly statistics and rules (feature rows bit for bit, the
 *    same verdicts); reference inference/anomaly/ (see the section "anomaly screening" below);
 *  - normalize_ascii: inference.text.normalize for plain-ASCII text.
 *
 * Featurizer semantics copied from the Python path (and so from scikit-learn):
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
#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#include <numpy/arrayobject.h>
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
        if (s->hash == h && s->length == -n) {
            const Py_UCS4 *cp = self->cps + s->offset;
            int k = 0;
            while (k < n && cp[k] == chars[k]) {
                k++;
            }
            if (k == n) {
                return s->column;
            }
        }
    }
}

/* Sort a[0..n) ascending: quicksort (median of three, the smaller side first) down to runs of
   16, then insertion sort. A text has a few dozen to a few hundred columns; libc's qsort calls a
   comparison function per step and allocates, which cost more than the sorting here. */
static void sort_int32(int32_t *a, Py_ssize_t n) {
    while (n > 16) {
        int32_t x = a[0], y = a[n / 2], z = a[n - 1];
        int32_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        Py_ssize_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < pivot) {
                i++;
            }
            while (a[j] > pivot) {
                j--;
            }
            if (i >= j) {
                break;
            }
            int32_t t = a[i];
            a[i] = a[j];
            a[j] = t;
            i++;
            j--;
        }
        /* a[0..j] <= pivot <= a[j+1..n) */
        Py_ssize_t left = j + 1;
        if (left < n - left) {
            sort_int32(a, left);
            a += left;
            n -= left;
        } else {
            sort_int32(a + left, n - left);
            n = left;
        }
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        int32_t v = a[i];
        Py_ssize_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
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

/* A batch of sparse rows in coordinate form, grown as texts are featurized. */
typedef struct {
    int64_t *rows, *cols;
    double *vals;
    Py_ssize_t size, cap;
} Coo;

static void coo_free(Coo *c) {
    PyMem_Free(c->rows);
    PyMem_Free(c->cols);
    PyMem_Free(c->vals);
}

static int coo_reserve(Coo *c, Py_ssize_t more) {
    if (c->size + more <= c->cap) {
        return 0;
    }
    Py_ssize_t new_cap = c->cap ? c->cap : 1024;
    while (new_cap < c->size + more) {
        new_cap *= 2;
    }
    int64_t *new_rows = PyMem_Realloc(c->rows, (size_t)new_cap * sizeof(int64_t));
    if (new_rows != NULL) {
        c->rows = new_rows;
    }
    int64_t *new_cols = PyMem_Realloc(c->cols, (size_t)new_cap * sizeof(int64_t));
    if (new_cols != NULL) {
        c->cols = new_cols;
    }
    double *new_vals = PyMem_Realloc(c->vals, (size_t)new_cap * sizeof(double));
    if (new_vals != NULL) {
        c->vals = new_vals;
    }
    if (new_rows == NULL || new_cols == NULL || new_vals == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    c->cap = new_cap;
    return 0;
}

/* The TF-IDF rows of texts[0..n_texts) appended to out (see the module comment). */
static int featurize(const FeatureIndex *self, PyObject *const *items, Py_ssize_t n_texts, Coo *out) {
    Scratch s = {0};
    int status = -1;
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
        sort_int32(s.ids.data, s.ids.size);
        if (coo_reserve(out, s.ids.size) < 0) {
            goto done;
        }
        int64_t *rows = out->rows, *cols = out->cols;
        double *vals = out->vals;
        Py_ssize_t first = out->size, size = out->size;
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
        out->size = size;
    }
    status = 0;
done:
    scratch_free(&s);
    return status;
}

/* A new C-contiguous NumPy array of `nd` dimensions holding a copy of `data`. */
static PyObject *array_copy(int nd, npy_intp *dims, int type, const void *data, size_t nbytes) {
    PyObject *array = PyArray_SimpleNew(nd, dims, type);
    if (array != NULL && nbytes > 0) {
        memcpy(PyArray_DATA((PyArrayObject *)array), data, nbytes);
    }
    return array;
}

/* feed(texts) -> (rows [nnz, 1] int64, cols [nnz] int64, vals [nnz, 1] float64): the TF-IDF rows
   (see the module comment) as the NumPy arrays the stacked heads take
   (inference.graphs.fuse_linear_heads); Featurizer.transform flattens rows and vals (views). */
static PyObject *FeatureIndex_feed(FeatureIndex *self, PyObject *arg) {
    PyObject *texts = PySequence_Fast(arg, "texts must be a sequence of str");
    if (texts == NULL) {
        return NULL;
    }
    Coo c = {0};
    PyObject *result = NULL;
    if (featurize(self, PySequence_Fast_ITEMS(texts), PySequence_Fast_GET_SIZE(texts), &c) == 0) {
        npy_intp column[2] = {c.size, 1}, flat[1] = {c.size};
        PyObject *rows = array_copy(2, column, NPY_INT64, c.rows, (size_t)c.size * sizeof(int64_t));
        PyObject *cols = rows ? array_copy(1, flat, NPY_INT64, c.cols, (size_t)c.size * sizeof(int64_t)) : NULL;
        PyObject *vals = cols ? array_copy(2, column, NPY_FLOAT64, c.vals, (size_t)c.size * sizeof(double)) : NULL;
        if (vals != NULL) {
            result = PyTuple_Pack(3, rows, cols, vals);
        }
        Py_XDECREF(rows);
        Py_XDECREF(cols);
        Py_XDECREF(vals);
    }
    coo_free(&c);
    Py_DECREF(texts);
    return result;
}

static PyMethodDef FeatureIndex_methods[] = {
    {"feed", (PyCFunction)FeatureIndex_feed, METH_O,
     "feed(texts) -> (rows, cols, vals): the TF-IDF rows as NumPy arrays shaped for the stacked\n"
     "heads: rows [nnz, 1] int64, cols [nnz] int64, vals [nnz, 1] float64."},
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

/* ==== anomaly screening =========================================================================
 *
 * The reference is the Python in inference/anomaly/: stats.analyse_python (the analysis),
 * stats._feature_row (the forest's feature row), rules.rules and lexicon.abuse_level (the rules).
 * tests/inference/test_native_screen.py compares this code with it on the corpus, the abuse
 * lexicon in obfuscated forms and generated ASCII and Unicode texts: feature rows bit for bit,
 * verdicts exactly. Python builds the tables from its own (inference/anomaly/screen.py).
 *
 * A text is screened here when clean_text leaves it as it is: no control or zero-width character
 * (stats.CONTROL_RANGES), and, when it is not ASCII, no lone surrogate, already NFC, and of the same
 * length after str.lower() (U+0130 is not); then clean_text(text) is text[:max_chars]. It must also
 * have no '*' (the abuse rule's wildcard lookup). Any other text is reported as "needs the Python
 * path" (SCREEN_PYTHON) and takes it.
 *
 * The regexes that find e-mails, handles, chat links, URLs and phone numbers stay in Python: a text
 * in which one of them could match ('@', '/', "www.", a '.' that could start a bare domain, ten
 * digits) is reported as SCREEN_EXTRACT. The caller runs stats.extract_contacts on it and hands the
 * result to screen_extracted(), which does the rest; the host checks of spam_link also stay in
 * Python (rules.link_verdict), helped by the SCREEN_SPAM_CUE bit. On every other text the analysis
 * has urls=(), emails=0 and phones=0.
 *
 * Texts are read into arrays of code points; character classes are those of Python: str.isalpha
 * is Py_UNICODE_ISALPHA, re's \w is Py_UNICODE_ISALNUM or '_', re's \s and str.split() are
 * Py_UNICODE_ISSPACE (tests check these equalities on every code point).
 */

static inline int ascii_alnum(Py_UCS4 c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static inline int ascii_alpha(Py_UCS4 c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static inline int ascii_upper(Py_UCS4 c) { return c >= 'A' && c <= 'Z'; }
static inline Py_UCS4 ascii_lower(Py_UCS4 c) { return ascii_upper(c) ? (c | 0x20) : c; }
/* One of "aeiouy": the vowels of stats (counted in the lower-cased text). */
static inline int ascii_vowel(Py_UCS4 c) {
    return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' || c == 'y';
}

/* Python's character predicates, with the ASCII answers inline. */
static inline int u_alpha(Py_UCS4 c) { return c < 128 ? ascii_alpha(c) : Py_UNICODE_ISALPHA(c); }
static inline int u_alnum(Py_UCS4 c) { return c < 128 ? ascii_alnum(c) : Py_UNICODE_ISALNUM(c); }
static inline int u_digit(Py_UCS4 c) { return c < 128 ? (c >= '0' && c <= '9') : Py_UNICODE_ISDIGIT(c); }
static inline int u_upper(Py_UCS4 c) { return c < 128 ? ascii_upper(c) : Py_UNICODE_ISUPPER(c); }
static inline int u_lower(Py_UCS4 c) { return c < 128 ? (c >= 'a' && c <= 'z') : Py_UNICODE_ISLOWER(c); }
static inline int u_title(Py_UCS4 c) { return c < 128 ? 0 : Py_UNICODE_ISTITLE(c); }
/* re's \w for str patterns. */
static inline int u_word(Py_UCS4 c) { return c == '_' || u_alnum(c); }

static inline uint64_t fnv_ucs4(const Py_UCS4 *p, Py_ssize_t n) {
    uint64_t h = FNV_OFFSET;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = fnv_step(h, p[i]);
    }
    return h;
}

/* Inclusive code point ranges (stats.CONTROL_RANGES, stats.EMOJI_RANGES). */
typedef struct {
    Py_UCS4 lo, hi;
} CharRange;

/* The character sets the scan needs. */
typedef struct {
    unsigned char ascii_control[128]; /* the control ranges on ASCII, as a table */
    const CharRange *control;
    Py_ssize_t n_control;
    const CharRange *emoji;
    Py_ssize_t n_emoji;
    const Py_UCS4 *folds; /* non-ASCII characters that re's IGNORECASE matches with [a-z0-9] */
    Py_ssize_t n_folds;
} CharTables;

/* stats.CONTROL_RANGES on ASCII: the tables of analyse_ascii, which only takes ASCII text (filled
 * by init_ascii_tables at import). */
static const CharRange ASCII_CONTROL[] = {{0x00, 0x08}, {0x0b, 0x0c}, {0x0e, 0x1f}, {0x7f, 0x7f}};
static CharTables ASCII_TABLES;

static inline int in_ranges(const CharRange *ranges, Py_ssize_t n, Py_UCS4 c) {
    for (Py_ssize_t k = 0; k < n; k++) {
        if (c >= ranges[k].lo && c <= ranges[k].hi) {
            return 1;
        }
    }
    return 0;
}

/* ct->ascii_control from ct->control. */
static void fill_ascii_control(CharTables *ct) {
    for (Py_UCS4 c = 0; c < 128; c++) {
        ct->ascii_control[c] = (unsigned char)in_ranges(ct->control, ct->n_control, c);
    }
}

static void init_ascii_tables(void) {
    ASCII_TABLES.control = ASCII_CONTROL;
    ASCII_TABLES.n_control = (Py_ssize_t)(sizeof(ASCII_CONTROL) / sizeof(ASCII_CONTROL[0]));
    fill_ascii_control(&ASCII_TABLES);
}

static inline int is_fold(const CharTables *ct, Py_UCS4 c) {
    for (Py_ssize_t k = 0; c >= 128 && k < ct->n_folds; k++) {
        if (ct->folds[k] == c) {
            return 1;
        }
    }
    return 0;
}

/* Whether the '.' at `dot` (>= 1) could be the last dot of a bare domain: _URL_RE's second branch
 * needs [a-z0-9-] before it and a TLD letter after it, case-insensitively (stats._may_have_url on
 * ASCII; on other text the folds of ASCII letters count too). */
static inline int domain_dot(const CharTables *ct, const Py_UCS4 *t, Py_ssize_t len, Py_ssize_t dot) {
    Py_UCS4 before = t[dot - 1];
    if (!(ascii_alnum(before) || before == '-' || is_fold(ct, before)) || dot + 1 >= len) {
        return 0;
    }
    return ascii_alpha(t[dot + 1]) || is_fold(ct, t[dot + 1]);
}

/* A 'w' of _URL_RE's "www\." (case-insensitive). */
static inline int url_w(const CharTables *ct, Py_UCS4 c) { return c == 'w' || c == 'W' || is_fold(ct, c); }

/* The counts of stats.TextAnalysis for one fast-path text. */
typedef struct {
    Py_ssize_t nonspace, letters, upper, digits, vowels, exclaims, emojis, max_run;
    Py_ssize_t n_tokens, n_unique, n_alpha, max_token_len, sum_token_len, caps_words, top, best_same;
    Py_ssize_t nonwords;
    double repeated_bigrams;
    int has_star; /* a '*' anywhere: the abuse rule's wildcard lookup, left to Python */
} Measure;

/* One match of stats._TOKEN_RE in the lower-cased text. */
typedef struct {
    Py_ssize_t start, length;
    uint32_t id; /* distinct-token number, in order of first occurrence */
    int alpha;   /* letters only: one of TextAnalysis.alpha_tokens */
    int ascii;
} Token;

/* One word of lexicon._abuse_tokens. */
typedef struct {
    Py_ssize_t off, length; /* in TextScratch.wbuf */
    int ascii;              /* only ASCII characters (every lexicon key is ASCII) */
    int severity;           /* of the word alone (SEV_NONE: not a term) */
    int joinable;           /* a phrase or a joined term can start with it */
    int target;             /* one of lexicon._TARGET_WORDS */
} Word;

/* Per-call working memory, sized for the longest text seen (all bounded by its length). */
typedef struct {
    Py_ssize_t cap;            /* the buffers below hold a text of cap - 1 characters */
    Py_UCS4 *text;             /* the analysed text, text[:max_chars] */
    Py_UCS4 *low;              /* its str.lower() (same length) */
    Py_UCS4 *rtext, *rlow;     /* `rest` (stats.extract_contacts) and its str.lower() */
    const Py_UCS4 *tok_low;    /* what the tokens index: low, or rlow */
    Py_UCS4 *wbuf;             /* the abuse words, back to back */
    Py_UCS4 *tmp, *tmp2;       /* one chunk, one phrase key, one collapsed word */
    Token *tokens;
    Word *words;
    uint32_t *counts;          /* occurrences per distinct token */
    uint32_t *slots;           /* distinct-token table: index of a token + 1, 0 when empty */
    uint64_t *pairs;           /* distinct-bigram set: (id << 32 | id) | PAIR_USED, 0 when empty */
    uint64_t table_cap;        /* entries of slots and of pairs (a power of two) */
} TextScratch;

#define PAIR_USED (1ULL << 63)
/* Texts longer than this take the Python path (token ids must fit in 31 bits). */
#define FAST_MAX_LEN ((Py_ssize_t)1 << 28)

static void scratch_release(TextScratch *s) {
    PyMem_Free(s->text);
    PyMem_Free(s->low);
    PyMem_Free(s->rtext);
    PyMem_Free(s->rlow);
    PyMem_Free(s->wbuf);
    PyMem_Free(s->tmp);
    PyMem_Free(s->tmp2);
    PyMem_Free(s->tokens);
    PyMem_Free(s->words);
    PyMem_Free(s->counts);
    PyMem_Free(s->slots);
    PyMem_Free(s->pairs);
    memset(s, 0, sizeof(*s));
}

/* Make every buffer hold a text of `len` (< FAST_MAX_LEN) characters. */
static int scratch_reserve(TextScratch *s, Py_ssize_t len) {
    if (len < s->cap) {
        return 0;
    }
    scratch_release(s);
    Py_ssize_t cap = len + 1 < 256 ? 256 : len + 1;
    uint64_t table = 16;
    while (table < (uint64_t)cap * 2) {
        table <<= 1;
    }
    size_t chars = (size_t)cap * sizeof(Py_UCS4);
    s->text = PyMem_Malloc(chars);
    s->low = PyMem_Malloc(chars);
    s->rtext = PyMem_Malloc(chars);
    s->rlow = PyMem_Malloc(chars);
    s->wbuf = PyMem_Malloc(chars);
    /* A phrase key is up to four words and three spaces. */
    s->tmp = PyMem_Malloc(chars + 8 * sizeof(Py_UCS4));
    s->tmp2 = PyMem_Malloc(chars + 8 * sizeof(Py_UCS4));
    s->tokens = PyMem_Malloc((size_t)cap * sizeof(Token));
    s->words = PyMem_Malloc((size_t)cap * sizeof(Word));
    s->counts = PyMem_Malloc((size_t)cap * sizeof(uint32_t));
    s->slots = PyMem_Malloc((size_t)table * sizeof(uint32_t));
    s->pairs = PyMem_Malloc((size_t)table * sizeof(uint64_t));
    if (s->text == NULL || s->low == NULL || s->rtext == NULL || s->rlow == NULL || s->wbuf == NULL || s->tmp == NULL || s->tmp2 == NULL ||
        s->tokens == NULL || s->words == NULL || s->counts == NULL || s->slots == NULL || s->pairs == NULL) {
        scratch_release(s);
        PyErr_NoMemory();
        return -1;
    }
    s->cap = cap;
    s->table_cap = table;
    return 0;
}

/* An ASCII text into `out` and `low` (str.lower on ASCII maps A-Z only). */
static void load_ascii(PyObject *text, Py_ssize_t len, Py_UCS4 *out, Py_UCS4 *low) {
    const Py_UCS1 *t = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < len; i++) {
        out[i] = t[i];
        low[i] = ascii_lower(t[i]);
    }
}

/* The first pass of stats.analyse_python: the character counts. Returns 0 when clean_text would
 * change the text. Sets *extract when a contact or URL pattern could match; with extract == NULL
 * (analyse_ascii) such a text returns 0 too. */
static int text_scan(const CharTables *ct, const Py_UCS4 *t, const Py_UCS4 *low, Py_ssize_t len, Measure *m,
                     int *extract) {
    memset(m, 0, sizeof(*m));
    int found = 0;
    Py_ssize_t run = 0;
    Py_UCS4 prev = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        Py_UCS4 c = t[i];
        if (c < 128 ? ct->ascii_control[c] : in_ranges(ct->control, ct->n_control, c)) {
            return 0; /* clean_text rewrites control characters */
        }
        if (c == '@' || c == '/' || (c == '.' && i >= 1 && domain_dot(ct, t, len, i)) ||
            (url_w(ct, c) && i + 3 < len && url_w(ct, t[i + 1]) && url_w(ct, t[i + 2]) && t[i + 3] == '.')) {
            found = 1; /* e-mails, handles, chat links, URLs */
        }
        m->has_star |= c == '*';
        m->exclaims += c == '!'; /* text.count("!") */
        if (c >= 128 && in_ranges(ct->emoji, ct->n_emoji, c)) {
            m->emojis++; /* len(_EMOJI_RE.findall(text)) */
        }
        if (Py_UNICODE_ISSPACE(c)) {
            continue;
        }
        /* The counts over nonspace = "".join(text.split()). */
        m->nonspace++;
        if (u_digit(c) && ++m->digits >= 10) {
            found = 1; /* the phone pattern would run */
        }
        m->letters += u_alpha(c);
        m->upper += u_upper(c);
        /* nonspace.lower().count(v) for v in "aeiouy": lower() maps character to character here
           (same length), and only its final-sigma rule depends on the neighbours. */
        m->vowels += ascii_vowel(low[i]);
        /* Longest run of one character in nonspace (_RUN2_RE; 1 for a lone character, 0 for
           none). */
        run = (m->nonspace > 1 && c == prev) ? run + 1 : 1;
        prev = c;
        if (run > m->max_run) {
            m->max_run = run;
        }
    }
    if (extract == NULL) {
        return !found;
    }
    *extract = found;
    return 1;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* The end of the _TOKEN_RE match ([^\W_]+(?:'[^\W_]+)? : alphanumerics, optionally joined by one
 * apostrophe) that starts at t[i], an alphanumeric. */
static inline Py_ssize_t token_end(const Py_UCS4 *t, Py_ssize_t len, Py_ssize_t i) {
    while (i < len && u_alnum(t[i])) {
        i++;
    }
    if (i + 1 < len && t[i] == '\'' && u_alnum(t[i + 1])) {
        i++;
        while (i < len && u_alnum(t[i])) {
            i++;
        }
    }
    return i;
}

/* len(t) >= 2 and t.isupper() and t.isalpha() (str.isupper: some cased character and no lower-
 * or title-case one). */
static int caps_word(const Py_UCS4 *t, Py_ssize_t n) {
    int cased = 0;
    if (n < 2) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!u_alpha(t[i]) || u_lower(t[i]) || u_title(t[i])) {
            return 0;
        }
        cased |= u_upper(t[i]);
    }
    return cased;
}

/* The token statistics of stats.analyse_python over `rest` (t as written, low lower-cased):
 * tokens of low, distinct tokens, the top count, the longest run of one token, the share of
 * repeated word pairs, and the caps words among the tokens of t. */
static void text_tokens(TextScratch *s, const Py_UCS4 *t, const Py_UCS4 *low, Py_ssize_t len, Measure *m) {
    s->tok_low = low;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < len;) {
        if (!u_alnum(low[i])) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        i = token_end(low, len, i);
        int alpha = 1, ascii = 1;
        for (Py_ssize_t k = start; k < i; k++) {
            alpha &= u_alpha(low[k]);
            ascii &= low[k] < 128;
        }
        Py_ssize_t length = i - start;
        if (length > m->max_token_len) {
            m->max_token_len = length;
        }
        m->sum_token_len += length;
        m->n_alpha += alpha;
        s->tokens[n].start = start;
        s->tokens[n].length = length;
        s->tokens[n].alpha = alpha;
        s->tokens[n].ascii = ascii;
        n++;
    }
    m->n_tokens = n;
    /* Caps words are counted from two capitals on (stats.analyse_python). */
    if (m->upper >= 2) {
        for (Py_ssize_t i = 0; i < len;) {
            if (!u_alnum(t[i])) {
                i++;
                continue;
            }
            Py_ssize_t start = i;
            i = token_end(t, len, i);
            m->caps_words += caps_word(t + start, i - start);
        }
    }

    /* Distinct tokens (set(tokens), Counter(tokens)). n <= (len + 1) / 2, so 2n <= table_cap. */
    uint64_t size = 16;
    while (size < (uint64_t)n * 2) {
        size <<= 1;
    }
    memset(s->slots, 0, (size_t)size * sizeof(uint32_t));
    uint32_t n_unique = 0, top = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        Token *tok = &s->tokens[k];
        const Py_UCS4 *key = low + tok->start;
        for (uint64_t at = fnv_ucs4(key, tok->length) & (size - 1);; at = (at + 1) & (size - 1)) {
            uint32_t v = s->slots[at];
            if (v == 0) {
                s->slots[at] = (uint32_t)k + 1;
                tok->id = n_unique;
                s->counts[n_unique++] = 0;
                break;
            }
            const Token *other = &s->tokens[v - 1];
            if (other->length == tok->length &&
                memcmp(low + other->start, key, (size_t)tok->length * sizeof(Py_UCS4)) == 0) {
                tok->id = other->id;
                break;
            }
        }
        uint32_t count = ++s->counts[tok->id];
        if (count > top) {
            top = count;
        }
    }
    m->n_unique = n_unique;
    m->top = top;
    /* The longest run of one token matters only when some token occurs five times or more. */
    m->best_same = 1;
    if (top >= 5) {
        Py_ssize_t same = 0;
        for (Py_ssize_t k = 0; k < n; k++) {
            same = (k > 0 && s->tokens[k].id == s->tokens[k - 1].id) ? same + 1 : 1;
            if (same > m->best_same) {
                m->best_same = same;
            }
        }
    }
    /* 1 - len(set(bigrams)) / len(bigrams), only when some token repeats. */
    m->repeated_bigrams = 0.0;
    if ((Py_ssize_t)n_unique < n) {
        memset(s->pairs, 0, (size_t)size * sizeof(uint64_t));
        Py_ssize_t distinct = 0;
        for (Py_ssize_t k = 0; k + 1 < n; k++) {
            uint64_t key = ((uint64_t)s->tokens[k].id << 32 | s->tokens[k + 1].id) | PAIR_USED;
            for (uint64_t at = mix64(key) & (size - 1);; at = (at + 1) & (size - 1)) {
                if (s->pairs[at] == 0) {
                    s->pairs[at] = key;
                    distinct++;
                    break;
                }
                if (s->pairs[at] == key) {
                    break;
                }
            }
        }
        m->repeated_bigrams = 1.0 - (double)distinct / (double)(n - 1);
    }
}

/* A str of the ASCII code points p[0..n). */
static PyObject *ascii_str(const Py_UCS4 *p, Py_ssize_t n) {
    PyObject *str = PyUnicode_New(n, 127);
    if (str != NULL) {
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(str);
        for (Py_ssize_t i = 0; i < n; i++) {
            out[i] = (Py_UCS1)p[i];
        }
    }
    return str;
}

/* analyse_ascii(text, max_chars): the tuple stats.analyse turns into a TextAnalysis, or None for
 * a text that is not ASCII, longer than max_chars or off the fast path. */
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
    if (!PyUnicode_IS_ASCII(text) || len > max_chars || len >= FAST_MAX_LEN) {
        Py_RETURN_NONE;
    }
    TextScratch s = {0};
    Measure m;
    PyObject *result = NULL, *tokens = NULL, *alpha = NULL, **distinct = NULL;
    if (scratch_reserve(&s, len) < 0) {
        return NULL;
    }
    load_ascii(text, len, s.text, s.low);
    if (!text_scan(&ASCII_TABLES, s.text, s.low, len, &m, NULL)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    text_tokens(&s, s.text, s.low, len, &m);
    tokens = PyTuple_New(m.n_tokens);
    alpha = tokens ? PyTuple_New(m.n_alpha) : NULL;
    /* One str per distinct token, shared by its occurrences. */
    distinct = alpha ? PyMem_Calloc((size_t)m.n_unique + 1, sizeof(PyObject *)) : NULL;
    if (distinct == NULL) {
        if (alpha != NULL) {
            PyErr_NoMemory();
        }
        goto done;
    }
    Py_ssize_t n_alpha = 0;
    for (Py_ssize_t k = 0; k < m.n_tokens; k++) {
        const Token *tok = &s.tokens[k];
        PyObject *str = distinct[tok->id];
        if (str == NULL) {
            str = distinct[tok->id] = ascii_str(s.low + tok->start, tok->length);
            if (str == NULL) {
                goto done;
            }
        }
        PyTuple_SET_ITEM(tokens, k, Py_NewRef(str));
        if (tok->alpha) {
            PyTuple_SET_ITEM(alpha, n_alpha++, Py_NewRef(str));
        }
    }
    result = Py_BuildValue("(nnnnnOnnOnnnnnd)", m.nonspace, m.letters, m.upper, m.digits, m.vowels,
                           tokens, m.n_unique, m.max_token_len, alpha, m.max_run, m.top,
                           m.best_same, m.exclaims, m.caps_words, m.repeated_bigrams);
done:
    if (distinct != NULL) {
        for (Py_ssize_t k = 0; k < m.n_unique; k++) {
            Py_XDECREF(distinct[k]);
        }
        PyMem_Free(distinct);
    }
    Py_XDECREF(tokens);
    Py_XDECREF(alpha);
    scratch_release(&s);
    return result;
}

/* ---- Screen: the feature row and the rule verdicts of one text ------------------------------ */

enum { SEV_NONE = -1, SEV_MILD = 0, SEV_STRONG = 1, SEV_SLUR = 2 }; /* lexicon.SEVERITIES */
#define N_FEATURES 18                                                /* stats.FEATURE_NAMES */
/* rules._CREDENTIAL_RE, _CREDENTIAL_ASK_RE, _YOUR_RE, _SPAM_CUES, _CONTACT_CUES */
enum { CUE_CREDENTIAL, CUE_ASK, CUE_YOUR, CUE_SPAM, CUE_CONTACT, N_CUES };
#define MAX_EXTRAS 8

/* Verdict bits: the rules in rules._RULE_ORDER, then these. */
enum {
    RULE_ABUSE = 1 << 0,
    RULE_SPAM_LINK = 1 << 1,
    RULE_CONTACT_HARVEST = 1 << 2,
    RULE_GIBBERISH = 1 << 3,
    RULE_REPETITION = 1 << 4,
    RULE_SHOUTING = 1 << 5,
    SCREEN_MILD = 1 << 6,    /* only mild profanity (abuse_level's second value) */
    SCREEN_NOTHING = 1 << 7, /* no visible character: nothing to screen */
    SCREEN_LONG = 1 << 8,    /* at least min_outlier_chars visible characters */
    SCREEN_SPAM_CUE = 1 << 9, /* screen_extracted with URLs: _SPAM_CUES matches the text */
    SCREEN_PYTHON = -1,       /* the code of a text that needs the Python path */
    SCREEN_EXTRACT = -2,      /* ... that needs stats.extract_contacts, then screen_extracted */
};

/* Flags of a key of the lexicon table. */
enum {
    KEY_SINGLE = 1,       /* a key of AbuseLexicon.single (a run-collapsed term) */
    KEY_START = 2,        /* in AbuseLexicon.starts */
    KEY_PHRASE_START = 4, /* in AbuseLexicon.phrase_starts */
    KEY_TARGET = 8,       /* in lexicon._TARGET_WORDS */
    KEY_PHRASE = 16,      /* a key of AbuseLexicon.phrases, its words joined by single spaces */
};

#define KEY_BLOOM_BITS 65536
static inline uint64_t bloom_bit(uint64_t h) { return (h >> 40) & (KEY_BLOOM_BITS - 1); }

typedef struct {
    uint64_t hash;
    uint32_t off, length;        /* the key, in Screen.keys (ASCII) */
    uint32_t terms_off, terms_n; /* KEY_SINGLE: its (term length, severity) pairs in Screen.terms */
    int32_t phrase_severity;     /* KEY_PHRASE */
    uint32_t flags;              /* 0: an empty slot */
} KeyEntry;

/* One (term, severity) of AbuseLexicon.single: the term's length and severity rank. */
typedef struct {
    uint32_t min_length;
    int32_t severity;
} TermSeverity;

/* One item of a cue alternative: between min and max (< 0: no limit) characters of a set (ASCII
 * characters as bits, others as a short list or, for \s, Py_UNICODE_ISSPACE). */
typedef struct {
    uint64_t set[2];
    Py_UCS4 extras[MAX_EXTRAS];
    int n_extras, space;
    Py_ssize_t min, max;
} CueItem;

/* rules._Cues: \b(?:alternatives)\b, case-insensitive; alternative a is items[alts[a]..alts[a+1]).
 * The character sets come from re itself (inference/anomaly/screen.py), so case folding and \s
 * mean what the regex means. */
typedef struct {
    CueItem *items;
    Py_ssize_t *alts;
    Py_ssize_t n_alts;
    /* The alternatives a match can start with at an ASCII character c: first_alts[first_at[c] ..
       first_at[c + 1]) (those whose first item accepts c or is optional). */
    Py_ssize_t first_at[129];
    Py_ssize_t *first_alts;
} Cue;

typedef struct {
    PyObject_HEAD
    KeyEntry *entries;
    uint64_t mask;
    uint64_t bloom[KEY_BLOOM_BITS / 64]; /* a bit per key hash: most words skip the table */
    unsigned char *keys;
    size_t keys_size, keys_cap;
    TermSeverity *terms;
    size_t terms_size, terms_cap;
    int lexicon_ascii;                    /* every key is ASCII: no other word can be a term */
    unsigned char strip[128];             /* lexicon._STRIP_CHARS */
    unsigned char leet[128];              /* lexicon._LEET (identity elsewhere) */
    unsigned char rare_pair[26][26];      /* stats._RARE_PAIRS */
    unsigned char keyboard_first[26][26]; /* first two letters of some stats._KEYBOARD_RUNS */
    uint32_t *keyboard;                   /* stats._KEYBOARD_RUNS, four letters packed */
    Py_ssize_t n_keyboard;
    Cue cues[N_CUES];
    CharRange *ranges; /* control ranges, then emoji ranges (tables points into them) */
    Py_UCS4 *folds;
    CharTables tables;
    PyObject *is_nfc;            /* unicodedata.is_normalized("NFC", ...) */
    PyObject *counts_as_nonword; /* stats._counts_as_nonword, for tokens that are not ASCII */
    PyObject *lower_name;        /* "lower" */
    Py_ssize_t max_chars, min_outlier_chars;
    int ready;
    Py_ssize_t busy;    /* screen() calls under way (a callback may let another thread in) */
    TextScratch cached; /* reused by calls that find it free (cached_busy == 0) */
    int cached_busy;
} Screen;

static inline int item_has(const CueItem *it, Py_UCS4 c) {
    if (c < 128) {
        return (it->set[c >> 6] >> (c & 63)) & 1;
    }
    if (it->space && Py_UNICODE_ISSPACE(c)) {
        return 1;
    }
    for (int k = 0; k < it->n_extras; k++) {
        if (it->extras[k] == c) {
            return 1;
        }
    }
    return 0;
}

/* The entry of an ASCII key, or NULL (also for any key with another character: every stored key
 * is ASCII). */
static const KeyEntry *key_find(const Screen *self, const Py_UCS4 *key, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (key[i] >= 128) {
            return NULL;
        }
    }
    uint64_t h = fnv_ucs4(key, n);
    if (!((self->bloom[bloom_bit(h) >> 6] >> (bloom_bit(h) & 63)) & 1)) {
        return NULL;
    }
    for (uint64_t at = h & self->mask;; at = (at + 1) & self->mask) {
        const KeyEntry *e = &self->entries[at];
        if (e->flags == 0) {
            return NULL;
        }
        if (e->hash != h || e->length != (uint32_t)n) {
            continue;
        }
        const unsigned char *stored = self->keys + e->off;
        Py_ssize_t i = 0;
        while (i < n && stored[i] == key[i]) {
            i++;
        }
        if (i == n) {
            return e;
        }
    }
}

/* ---- rule helpers ---- */

/* stats._is_nonword for an alphabetic lower-case ASCII token of 4+ letters. */
static int is_nonword(const Screen *self, const Py_UCS4 *token, Py_ssize_t n, Py_UCS4 *buf) {
    /* word = collapse_runs(token, 2): every run of one letter cut to at most two. */
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (k >= 2 && buf[k - 1] == token[i] && buf[k - 2] == token[i]) {
            continue;
        }
        buf[k++] = token[i];
    }
    if (k < 4) {
        return 0;
    }
    if (k >= 30) {
        return 1;
    }
    /* Consonant runs: the non-empty parts of _VOWEL_SPLIT_RE.split(word). */
    int has_vowel = 0;
    Py_ssize_t run = 0, longest = 0, long_runs = 0;
    for (Py_ssize_t i = 0; i <= k; i++) {
        if (i < k && !ascii_vowel(buf[i])) {
            run++;
            continue;
        }
        has_vowel |= i < k;
        if (run > longest) {
            longest = run;
        }
        long_runs += run >= 4;
        run = 0;
    }
    if (!has_vowel || longest >= 6 || long_runs >= 2) {
        return 1;
    }
    /* The letters are a-z here (alphabetic ASCII, lower-cased). */
    for (Py_ssize_t i = 0; i + 1 < k; i++) {
        Py_UCS4 a = buf[i] - 'a', b = buf[i + 1] - 'a';
        if (self->rare_pair[a][b]) {
            return 1;
        }
        if (i + 3 < k && self->keyboard_first[a][b]) {
            uint32_t packed = (uint32_t)buf[i] << 24 | (uint32_t)buf[i + 1] << 16 |
                              (uint32_t)buf[i + 2] << 8 | (uint32_t)buf[i + 3];
            for (Py_ssize_t r = 0; r < self->n_keyboard; r++) {
                if (self->keyboard[r] == packed) {
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* TextAnalysis.nonwords: stats._counts_as_nonword over the alpha tokens. -1 on error. */
static Py_ssize_t count_nonwords(const Screen *self, TextScratch *s, Py_ssize_t n_tokens) {
    Py_ssize_t nonwords = 0;
    for (Py_ssize_t k = 0; k < n_tokens; k++) {
        const Token *tok = &s->tokens[k];
        /* Words of three letters or fewer are never judged. */
        if (!tok->alpha || tok->length < 4) {
            continue;
        }
        if (tok->ascii) {
            nonwords += is_nonword(self, s->tok_low + tok->start, tok->length, s->tmp2);
            continue;
        }
        /* Other tokens are judged after NFD without combining marks: the (memoised) Python. */
        PyObject *str = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, s->tok_low + tok->start, tok->length);
        PyObject *answer = str ? PyObject_CallOneArg(self->counts_as_nonword, str) : NULL;
        Py_XDECREF(str);
        int truth = answer ? PyObject_IsTrue(answer) : -1;
        Py_XDECREF(answer);
        if (truth < 0) {
            return -1;
        }
        nonwords += truth;
    }
    return nonwords;
}

/* stats._feature_row in the same operation order, in doubles, then cast to float32 (as
 * np.array(..., dtype=np.float32) does). Python's int / int is (double)a / (double)b for ints
 * below 2**53, and math.log1p is libm's log1p for x >= 0. */
static void feature_row(const Measure *m, Py_ssize_t n_chars, Py_ssize_t n_urls, Py_ssize_t n_contacts,
                        float *row) {
    Py_ssize_t n_tok = m->n_tokens;
    double nonspace = (double)(m->nonspace > 1 ? m->nonspace : 1);
    double letters = (double)(m->letters > 1 ? m->letters : 1);
    double tok = (double)n_tok;
    double values[N_FEATURES] = {
        log1p((double)n_chars),
        log1p(tok),
        (double)m->upper / letters,
        (double)(m->nonspace - m->letters) / nonspace,
        (double)m->digits / nonspace,
        log1p((double)m->max_run),
        n_tok ? (double)m->n_unique / tok : 1.0,
        n_tok ? (double)m->top / tok : 0.0,
        m->n_alpha ? (double)m->nonwords / (double)m->n_alpha : 0.0,
        (double)n_urls,     /* float(len(a.urls)) */
        (double)n_contacts, /* float(a.emails + a.phones) */
        (double)m->exclaims / (double)(n_tok > 1 ? n_tok : 1),
        (double)m->emojis / nonspace,
        n_tok ? (double)m->sum_token_len / tok : 0.0,
        log1p((double)m->max_token_len),
        (double)m->vowels / letters,
        m->repeated_bigrams,
        n_tok ? (double)m->caps_words / tok : 0.0,
    };
    for (int k = 0; k < N_FEATURES; k++) {
        row[k] = (float)values[k];
    }
}

/* rules._gibberish */
static int rule_gibberish(const Measure *m) {
    if (m->n_alpha == 0) {
        /* Only digits/symbols: gibberish when long enough to be a keyboard mash. */
        return m->nonspace >= 12 && m->letters == 0 && m->emojis * 2 < m->nonspace &&
               m->digits < m->nonspace;
    }
    if (m->nonwords == 0) {
        return 0;
    }
    double share = (double)m->nonwords / (double)m->n_alpha;
    return share >= 0.5 || (m->nonwords >= 3 && share >= 0.3);
}

/* stats.UNIT_REPEAT_RE.fullmatch(token): (.{1,3}?)\1{5,} — one unit of 1-3 characters, six
 * times or more, and nothing else (tokens hold no newline, which '.' would not match). */
static int unit_repeat(const Py_UCS4 *t, Py_ssize_t n) {
    for (Py_ssize_t unit = 1; unit <= 3; unit++) {
        if (n % unit != 0 || n / unit < 6) {
            continue;
        }
        Py_ssize_t i = unit;
        while (i < n && t[i] == t[i - unit]) {
            i++;
        }
        if (i == n) {
            return 1;
        }
    }
    return 0;
}

/* rules._repetition */
static int rule_repetition(const Measure *m, const TextScratch *s) {
    Py_ssize_t n = m->n_tokens;
    if (m->best_same >= 5) {
        return 1;
    }
    if (n >= 6 && (double)m->top / (double)n >= 0.5) {
        return 1;
    }
    if (n >= 12 && (double)m->n_unique / (double)n < 0.3) {
        return 1;
    }
    if (m->max_run >= 15) {
        return 1;
    }
    if (m->max_token_len >= 20) {
        for (Py_ssize_t k = 0; k < n; k++) {
            const Token *tok = &s->tokens[k];
            if (tok->length >= 20 && unit_repeat(s->tok_low + tok->start, tok->length)) {
                return 1;
            }
        }
    }
    return n >= 12 && m->repeated_bigrams >= 0.5;
}

/* rules._shouting */
static int rule_shouting(const Measure *m) {
    if (m->letters < 12) {
        return 0;
    }
    double share = (double)m->upper / (double)m->letters;
    return (share >= 0.7 && m->caps_words >= 3) ||
           (share >= 0.6 && m->caps_words >= 2 && m->exclaims >= 3);
}

/* re's \b: a word character on exactly one side of `pos`. */
static inline int word_boundary(const Py_UCS4 *t, Py_ssize_t len, Py_ssize_t pos) {
    int before = pos > 0 && u_word(t[pos - 1]);
    int after = pos < len && u_word(t[pos]);
    return before != after;
}

/* Whether items[item..end) match t from pos and a \b follows; tries every count of each item
 * (greedy first, as re backtracks), so the answer is re's. */
static int cue_match_at(const CueItem *items, Py_ssize_t item, Py_ssize_t end, const Py_UCS4 *t,
                        Py_ssize_t len, Py_ssize_t pos) {
    if (item == end) {
        return word_boundary(t, len, pos);
    }
    const CueItem *it = &items[item];
    Py_ssize_t count = 0;
    while (pos + count < len && (it->max < 0 || count < it->max) && item_has(it, t[pos + count])) {
        count++;
    }
    for (Py_ssize_t k = count; k >= it->min; k--) {
        if (cue_match_at(items, item + 1, end, t, len, pos + k)) {
            return 1;
        }
    }
    return 0;
}

/* Whether alternative a of the cue matches at pos. */
static inline int cue_alt_at(const Cue *cue, Py_ssize_t a, const Py_UCS4 *t, Py_ssize_t len, Py_ssize_t pos) {
    return cue_match_at(cue->items, cue->alts[a], cue->alts[a + 1], t, len, pos);
}

/* cue.pattern.search(text) is not None: \b then some alternative, at any position. */
static int cue_search(const Cue *cue, const Py_UCS4 *t, Py_ssize_t len) {
    for (Py_ssize_t pos = 0; pos <= len; pos++) {
        /* At the end of the text, or at a character beyond ASCII, any alternative may start. */
        int every = pos == len || t[pos] >= 128;
        Py_ssize_t from = every ? 0 : cue->first_at[t[pos]], to = every ? cue->n_alts : cue->first_at[t[pos] + 1];
        if (from == to || !word_boundary(t, len, pos)) {
            continue;
        }
        for (Py_ssize_t k = from; k < to; k++) {
            if (cue_alt_at(cue, every ? k : cue->first_alts[k], t, len, pos)) {
                return 1;
            }
        }
    }
    return 0;
}

/* ---- the abuse rule (lexicon._abuse_tokens, abuse_hits, abuse_level) ---- */

static inline int az_or_star(Py_UCS4 c) { return (c >= 'a' && c <= 'z') || c == '*'; }

/* Append the word wbuf[start..w) to s->words. */
static inline void push_word(TextScratch *s, Py_ssize_t start, Py_ssize_t w, Py_ssize_t *nw) {
    int ascii = 1;
    for (Py_ssize_t i = start; i < w; i++) {
        ascii &= s->wbuf[i] < 128;
    }
    s->words[*nw].off = start;
    s->words[*nw].length = w - start;
    s->words[*nw].ascii = ascii;
    (*nw)++;
}

/* lexicon._deobfuscate for one lower-case chunk c[0..n) of text.lower().split(): its parts are
 * appended to s->wbuf at *w (back to back) and to s->words. */
static void deobfuscate(const Screen *self, TextScratch *s, const Py_UCS4 *c, Py_ssize_t n, Py_ssize_t *w,
                        Py_ssize_t *nw) {
    /* tok = raw.strip(_STRIP_CHARS) */
    Py_ssize_t a = 0, b = n;
    while (a < b && c[a] < 128 && self->strip[c[a]]) {
        a++;
    }
    while (b > a && c[b - 1] < 128 && self->strip[c[b - 1]]) {
        b--;
    }
    /* bare = tok.rstrip("!."); letters only: (bare,) */
    Py_ssize_t bare = b;
    while (bare > a && (c[bare - 1] == '!' || c[bare - 1] == '.')) {
        bare--;
    }
    int letters = bare > a;
    for (Py_ssize_t i = a; i < bare && letters; i++) {
        letters = u_alpha(c[i]);
    }
    if (letters) {
        Py_ssize_t start = *w;
        memcpy(s->wbuf + start, c + a, (size_t)(bare - a) * sizeof(Py_UCS4));
        *w += bare - a;
        push_word(s, start, *w, nw);
        return;
    }
    /* tok = tok.lstrip("#@") if len(tok) > 1 and tok[1:2].isalpha() else tok */
    if (b - a > 1 && u_alpha(c[a + 1])) {
        while (a < b && (c[a] == '#' || c[a] == '@')) {
            a++;
        }
    }
    /* tok = tok.rstrip("!."); if not tok: () */
    while (b > a && (c[b - 1] == '!' || c[b - 1] == '.')) {
        b--;
    }
    if (a == b) {
        return;
    }
    Py_ssize_t m = b - a;
    Py_UCS4 *x = s->tmp;
    int any_alpha = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        x[i] = c[a + i];
        any_alpha |= u_alpha(x[i]);
    }
    if (any_alpha) {
        for (Py_ssize_t i = 0; i < m; i++) {
            x[i] = x[i] < 128 ? self->leet[x[i]] : x[i]; /* tok.translate(_LEET) */
        }
    }
    /* _INNER_SEPARATORS.sub("", tok) when tok has a letter: (?<=[a-z*])[.\-_](?=[a-z*]), the
       look-arounds reading the translated string. Then _SPLIT_PARTS_RE.split on [^\w*]+: the parts
       are the maximal runs of [\w*]; all-digit ones are dropped and "_" is removed from the others
       (which can leave an empty part: "__" gives ""). */
    Py_ssize_t run_start = 0;
    int in_run = 0, all_digits = 0;
    for (Py_ssize_t i = 0; i <= m; i++) {
        Py_UCS4 ch = i < m ? x[i] : ' ';
        if (i < m && any_alpha && (ch == '.' || ch == '-' || ch == '_') && i > 0 && az_or_star(x[i - 1]) &&
            i + 1 < m && az_or_star(x[i + 1])) {
            continue; /* removed */
        }
        if (i < m && (u_word(ch) || ch == '*')) {
            if (!in_run) {
                in_run = 1;
                all_digits = 1;
                run_start = *w;
            }
            all_digits &= u_digit(ch);
            if (ch != '_') {
                s->wbuf[(*w)++] = ch;
            }
            continue;
        }
        if (in_run) {
            if (all_digits) {
                *w = run_start; /* part.isdigit(): dropped */
            } else {
                push_word(s, run_start, *w, nw);
            }
            in_run = 0;
        }
    }
}

/* lexicon._abuse_tokens over s->low[0..len): the number of words in s->words. */
static Py_ssize_t abuse_words(const Screen *self, TextScratch *s, Py_ssize_t len) {
    Py_ssize_t w = 0, nw = 0;
    for (Py_ssize_t i = 0; i < len;) {
        if (Py_UNICODE_ISSPACE(s->low[i])) { /* str.split() */
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < len && !Py_UNICODE_ISSPACE(s->low[i])) {
            i++;
        }
        deobfuscate(self, s, s->low + start, i - start, &w, &nw);
    }
    /* Spelled-out letters: three or more one-letter parts in a row are joined into one word.
       Parts are back to back in wbuf, so joining adds up lengths. */
    Word *words = s->words;
    Py_ssize_t out = 0;
    for (Py_ssize_t i = 0; i < nw;) {
        Py_ssize_t j = i;
        int ascii = 1;
        while (j < nw && words[j].length == 1 && u_alpha(s->wbuf[words[j].off])) {
            ascii &= words[j].ascii;
            j++;
        }
        if (j - i >= 3) {
            words[out].off = words[i].off;
            words[out].length = j - i;
            words[out].ascii = ascii;
            out++;
            i = j;
        } else {
            words[out++] = words[i++];
        }
    }
    return out;
}

/* collapse_runs(word, 1) into buf: every run of one character cut to one. */
static Py_ssize_t collapse1(const Py_UCS4 *word, Py_ssize_t n, Py_UCS4 *buf) {
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (k == 0 || buf[k - 1] != word[i]) {
            buf[k++] = word[i];
        }
    }
    return k;
}

/* The strongest severity of the terms of a single key that a word of `length` characters can be
 * (a stretched form may be longer than the term, never shorter). */
static int term_severity(const Screen *self, const KeyEntry *e, Py_ssize_t length) {
    int best = SEV_NONE;
    if (e == NULL || !(e->flags & KEY_SINGLE)) {
        return best;
    }
    for (uint32_t k = 0; k < e->terms_n; k++) {
        const TermSeverity *ts = &self->terms[e->terms_off + k];
        if ((size_t)length >= ts->min_length && ts->severity > best) {
            best = ts->severity;
        }
    }
    return best;
}

/* lexicon._lookup (no '*': the fast path has none). */
static int word_severity(const Screen *self, const Py_UCS4 *word, Py_ssize_t n, Py_UCS4 *buf) {
    Py_ssize_t k = collapse1(word, n, buf);
    return term_severity(self, key_find(self, buf, k), n);
}

/* lexicon._word_info, plus whether the word is a target word. */
static void word_info(const Screen *self, TextScratch *s, Word *word) {
    word->severity = SEV_NONE;
    word->joinable = word->target = 0;
    if (!word->ascii) {
        return; /* every key is ASCII (Screen.lexicon_ascii, else the text took the Python path) */
    }
    const Py_UCS4 *w = s->wbuf + word->off;
    Py_ssize_t k = collapse1(w, word->length, s->tmp2);
    const KeyEntry *collapsed = key_find(self, s->tmp2, k);
    /* Collapsing only removes characters: same length, same word. */
    const KeyEntry *raw = k == word->length ? collapsed : key_find(self, w, word->length);
    word->severity = term_severity(self, collapsed, word->length);
    word->joinable = (collapsed != NULL && (collapsed->flags & KEY_START)) ||
                     (raw != NULL && (raw->flags & KEY_PHRASE_START));
    word->target = raw != NULL && (raw->flags & KEY_TARGET);
}

/* AbuseLexicon.phrases.get(tuple(words[i:i + n])): SEV_NONE when it is not a phrase. */
static int phrase_severity(const Screen *self, TextScratch *s, Py_ssize_t i, Py_ssize_t n) {
    Py_ssize_t k = 0;
    for (Py_ssize_t j = i; j < i + n; j++) {
        if (j > i) {
            s->tmp[k++] = ' ';
        }
        memcpy(s->tmp + k, s->wbuf + s->words[j].off, (size_t)s->words[j].length * sizeof(Py_UCS4));
        k += s->words[j].length;
    }
    const KeyEntry *e = key_find(self, s->tmp, k);
    return e != NULL && (e->flags & KEY_PHRASE) ? e->phrase_severity : SEV_NONE;
}

/* lexicon.abuse_level over words[0..nw): sets *abuse (fires the rule) and *mild (only mild). */
static void abuse_level(const Screen *self, TextScratch *s, Py_ssize_t nw, int *abuse, int *mild) {
    Word *words = s->words;
    for (Py_ssize_t i = 0; i < nw; i++) {
        word_info(self, s, &words[i]);
    }
    /* abuse_hits: a joinable word may start a phrase of 4, 3 or 2 words, or a term written as two
       words of 6+ characters together; a phrase counts once. The hit severities are tallied. */
    Py_ssize_t slurs = 0, strong = 0, strong_aimed = 0, mild_aimed = 0, hits = 0;
    for (Py_ssize_t i = 0; i < nw;) {
        int severity = words[i].severity;
        Py_ssize_t span = 1;
        if (words[i].joinable) {
            for (Py_ssize_t n = 4; n >= 2; n--) {
                if (i + n > nw) {
                    continue;
                }
                int phrase = phrase_severity(self, s, i, n);
                if (phrase == SEV_NONE && n == 2 && words[i].length + words[i + 1].length >= 6) {
                    /* words[i] + words[i + 1]: the two are back to back in wbuf. */
                    phrase = word_severity(self, s->wbuf + words[i].off,
                                           words[i].length + words[i + 1].length, s->tmp2);
                }
                if (phrase != SEV_NONE) {
                    severity = phrase > severity ? phrase : severity;
                    span = n;
                    break;
                }
            }
        }
        if (severity != SEV_NONE) {
            hits++;
            /* aimed: a target word among words[max(0, i - 5) : i + 4] */
            int aimed = 0;
            for (Py_ssize_t j = i > 5 ? i - 5 : 0; j < i + 4 && j < nw && !aimed; j++) {
                aimed = words[j].target;
            }
            slurs += severity == SEV_SLUR;
            strong += severity == SEV_STRONG;
            strong_aimed += severity == SEV_STRONG && aimed;
            mild_aimed += severity == SEV_MILD && aimed;
        }
        i += span;
    }
    *abuse = slurs > 0 || (strong > 0 && (strong >= 2 || strong_aimed > 0)) || mild_aimed >= 2;
    *mild = hits > 0 && !*abuse;
}

/* 0 when clean_text's encode/NFC step leaves text[:2 * max_chars] unchanged, else 1; -1 on error. */
static int check_nfc(const Screen *self, PyObject *text) {
    Py_ssize_t n_chars = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    /* clean_text replaces lone surrogates in text[:2 * max_chars] and NFC-normalises it. */
    Py_ssize_t head = n_chars < 2 * self->max_chars ? n_chars : 2 * self->max_chars;
    for (Py_ssize_t i = 0; kind != PyUnicode_1BYTE_KIND && i < head; i++) {
        if (Py_UNICODE_IS_SURROGATE(PyUnicode_READ(kind, data, i))) {
            return 1;
        }
    }
    PyObject *prefix = PyUnicode_Substring(text, 0, head);
    PyObject *answer = prefix ? PyObject_CallOneArg(self->is_nfc, prefix) : NULL;
    Py_XDECREF(prefix);
    int normal = answer ? PyObject_IsTrue(answer) : -1;
    Py_XDECREF(answer);
    return normal < 0 ? -1 : !normal;
}

/* text[:len] into `out` and its str.lower() into `low`: 0, or 1 when lower() changes the length
 * (U+0130 does: the Python path), -1 on error. */
static int load_text(const Screen *self, PyObject *text, Py_ssize_t len, Py_UCS4 *out, Py_UCS4 *low) {
    if (PyUnicode_IS_ASCII(text)) {
        load_ascii(text, len, out, low);
        return 0;
    }
    PyObject *cut = PyUnicode_Substring(text, 0, len);
    PyObject *lower = cut ? PyObject_CallMethodNoArgs(cut, self->lower_name) : NULL;
    Py_XDECREF(cut);
    if (lower == NULL) {
        return -1;
    }
    if (!PyUnicode_Check(lower) || PyUnicode_GET_LENGTH(lower) != len) {
        Py_DECREF(lower);
        return 1;
    }
    int kind = PyUnicode_KIND(text), low_kind = PyUnicode_KIND(lower);
    const void *data = PyUnicode_DATA(text), *low_data = PyUnicode_DATA(lower);
    for (Py_ssize_t i = 0; i < len; i++) {
        out[i] = PyUnicode_READ(kind, data, i);
        low[i] = PyUnicode_READ(low_kind, low_data, i);
    }
    Py_DECREF(lower);
    return 0;
}

/* What stats.extract_contacts found in a text (screen_extracted), or nothing (screen). */
typedef struct {
    PyObject *rest; /* NULL: not extracted yet */
    Py_ssize_t n_urls, n_contacts;
} Extracted;

/* The verdict and feature row of one text: 0 when written; 1 when it needs the Python path;
 * 2 when it needs stats.extract_contacts first (only when ex->rest is NULL); -1 on error. */
static int screen_text(const Screen *self, TextScratch *s, PyObject *text, const Extracted *ex, float *row,
                       int32_t *code) {
    Py_ssize_t n_chars = PyUnicode_GET_LENGTH(text);
    /* clean_text cuts a text to its first max_chars characters; n_chars stays len(raw). */
    Py_ssize_t len = n_chars < self->max_chars ? n_chars : self->max_chars;
    Py_ssize_t rest_len = ex->rest ? PyUnicode_GET_LENGTH(ex->rest) : len;
    if (rest_len > len) {
        PyErr_SetString(PyExc_ValueError, "rest is longer than the text");
        return -1;
    }
    if (scratch_reserve(s, len) < 0) {
        return -1;
    }
    int status = PyUnicode_IS_ASCII(text) ? 0 : check_nfc(self, text);
    if (status == 0) {
        status = load_text(self, text, len, s->text, s->low);
    }
    if (status != 0) {
        return status;
    }
    Measure m;
    int extract = 0;
    if (!text_scan(&self->tables, s->text, s->low, len, &m, &extract) || m.has_star) {
        return 1;
    }
    const Py_UCS4 *rest = s->text, *rest_low = s->low;
    if (ex->rest != NULL) {
        /* Tokens come from the text without its contacts and URLs. */
        status = load_text(self, ex->rest, rest_len, s->rtext, s->rlow);
        if (status != 0) {
            return status;
        }
        rest = s->rtext;
        rest_low = s->rlow;
    } else if (extract) {
        return 2;
    }
    Py_ssize_t nw = abuse_words(self, s, len);
    if (!self->lexicon_ascii) {
        for (Py_ssize_t i = 0; i < nw; i++) {
            if (!s->words[i].ascii) {
                return 1; /* a word could be one of the lexicon's other keys */
            }
        }
    }
    text_tokens(s, rest, rest_low, rest_len, &m);
    m.nonwords = count_nonwords(self, s, m.n_tokens);
    if (m.nonwords < 0) {
        return -1;
    }
    feature_row(&m, n_chars, ex->n_urls, ex->n_contacts, row);

    int abuse = 0, mild = 0;
    abuse_level(self, s, nw, &abuse, &mild);
    int32_t verdict = 0;
    if (abuse) {
        verdict |= RULE_ABUSE;
    }
    /* rules._contact_harvest: a credential word with a request to hand it over is phishing when
       there is a contact or a "your"; otherwise a contact is harvesting with a lure, and one more
       contact or a call to get in touch. */
    const Py_UCS4 *t = s->text;
    int harvest;
    if (cue_search(&self->cues[CUE_CREDENTIAL], t, len) && cue_search(&self->cues[CUE_ASK], t, len)) {
        harvest = ex->n_contacts > 0 || cue_search(&self->cues[CUE_YOUR], t, len);
    } else {
        harvest = ex->n_contacts > 0 && cue_search(&self->cues[CUE_SPAM], t, len) &&
                  (ex->n_contacts >= 2 || cue_search(&self->cues[CUE_CONTACT], t, len));
    }
    if (harvest) {
        verdict |= RULE_CONTACT_HARVEST;
    }
    /* spam_link: the caller judges the links (rules.link_verdict); a lone untrusted link turns on
       a lure word. */
    if (ex->n_urls > 0 && cue_search(&self->cues[CUE_SPAM], t, len)) {
        verdict |= SCREEN_SPAM_CUE;
    }
    if (rule_gibberish(&m)) {
        verdict |= RULE_GIBBERISH;
    }
    if (rule_repetition(&m, s)) {
        verdict |= RULE_REPETITION;
    }
    if (rule_shouting(&m)) {
        verdict |= RULE_SHOUTING;
    }
    if (mild) {
        verdict |= SCREEN_MILD;
    }
    if (m.nonspace == 0) {
        verdict |= SCREEN_NOTHING;
    }
    if (m.nonspace >= self->min_outlier_chars) {
        verdict |= SCREEN_LONG;
    }
    *code = verdict;
    return 0;
}

/* The scratch of one call: the Screen's own when free (no allocation per call), else a fresh one;
 * release with scratch_done. */
static TextScratch *scratch_take(Screen *self, TextScratch *local) {
    if (!self->cached_busy) {
        self->cached_busy = 1;
        return &self->cached;
    }
    memset(local, 0, sizeof(*local));
    return local;
}

/* Texts of up to this many characters keep their scratch memory for the next call. */
#define SCRATCH_KEEP 4096

static void scratch_done(Screen *self, TextScratch *s) {
    if (s == &self->cached) {
        if (s->cap > SCRATCH_KEEP + 1) {
            scratch_release(s);
        }
        self->cached_busy = 0;
    } else {
        scratch_release(s);
    }
}

/* ---- Screen construction ---- */

static void cue_clear(Cue *cue) {
    PyMem_Free(cue->items);
    PyMem_Free(cue->alts);
    PyMem_Free(cue->first_alts);
    memset(cue, 0, sizeof(*cue));
}

static void screen_clear(Screen *self) {
    PyMem_Free(self->entries);
    PyMem_Free(self->keys);
    PyMem_Free(self->terms);
    PyMem_Free(self->keyboard);
    PyMem_Free(self->ranges);
    PyMem_Free(self->folds);
    self->entries = NULL;
    self->keys = NULL;
    self->terms = NULL;
    self->keyboard = NULL;
    self->ranges = NULL;
    self->folds = NULL;
    memset(&self->tables, 0, sizeof(self->tables));
    self->keys_size = self->keys_cap = self->terms_size = self->terms_cap = 0;
    self->n_keyboard = 0;
    for (int k = 0; k < N_CUES; k++) {
        cue_clear(&self->cues[k]);
    }
    Py_CLEAR(self->is_nfc);
    Py_CLEAR(self->counts_as_nonword);
    Py_CLEAR(self->lower_name);
    scratch_release(&self->cached);
    self->ready = 0;
}

static void Screen_dealloc(Screen *self) {
    screen_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The entry of `key` (a str), created if absent; *entry = NULL for a key that is not ASCII (no
 * table lookup can find it: Screen.lexicon_ascii becomes 0). */
static int key_add(Screen *self, PyObject *key, uint32_t flag, KeyEntry **entry) {
    *entry = NULL;
    if (!PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "lexicon keys must be str");
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    if (!PyUnicode_IS_ASCII(key) || n >= FAST_MAX_LEN) {
        self->lexicon_ascii = 0;
        return 0;
    }
    const unsigned char *bytes = PyUnicode_1BYTE_DATA(key);
    uint64_t h = FNV_OFFSET;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = fnv_step(h, bytes[i]);
    }
    uint64_t at = h & self->mask;
    for (;; at = (at + 1) & self->mask) {
        KeyEntry *e = &self->entries[at];
        if (e->flags == 0) {
            break;
        }
        if (e->hash == h && e->length == (uint32_t)n && memcmp(self->keys + e->off, bytes, (size_t)n) == 0) {
            e->flags |= flag;
            *entry = e;
            return 0;
        }
    }
    if (self->keys_size + (size_t)n > self->keys_cap) {
        size_t cap = self->keys_cap ? self->keys_cap : 4096;
        while (cap < self->keys_size + (size_t)n) {
            cap *= 2;
        }
        unsigned char *keys = cap > UINT32_MAX ? NULL : PyMem_Realloc(self->keys, cap);
        if (keys == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->keys = keys;
        self->keys_cap = cap;
    }
    memcpy(self->keys + self->keys_size, bytes, (size_t)n);
    self->bloom[bloom_bit(h) >> 6] |= 1ULL << (bloom_bit(h) & 63);
    KeyEntry *e = &self->entries[at];
    e->hash = h;
    e->off = (uint32_t)self->keys_size;
    e->length = (uint32_t)n;
    e->terms_off = e->terms_n = 0;
    e->phrase_severity = SEV_NONE;
    e->flags = flag;
    self->keys_size += (size_t)n;
    *entry = e;
    return 0;
}

static int read_severity(PyObject *obj, int32_t *out) {
    long value = PyLong_AsLong(obj);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < SEV_MILD || value > SEV_SLUR) {
        PyErr_SetString(PyExc_ValueError, "severity ranks are 0 (mild), 1 (strong), 2 (slur)");
        return -1;
    }
    *out = (int32_t)value;
    return 0;
}

/* Room for `n` more TermSeverity. */
static int terms_reserve(Screen *self, size_t n) {
    if (self->terms_size + n <= self->terms_cap) {
        return 0;
    }
    size_t cap = self->terms_cap ? self->terms_cap : 1024;
    while (cap < self->terms_size + n) {
        cap *= 2;
    }
    TermSeverity *terms = cap > UINT32_MAX ? NULL : PyMem_Realloc(self->terms, cap * sizeof(TermSeverity));
    if (terms == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->terms = terms;
    self->terms_cap = cap;
    return 0;
}

/* One key of single: its ((term length, severity rank), ...) pairs. */
static int add_single_terms(Screen *self, KeyEntry *e, PyObject *pairs) {
    Py_ssize_t n = PySequence_Fast_GET_SIZE(pairs);
    if (e->terms_n != 0 || n > UINT16_MAX) {
        PyErr_SetString(PyExc_ValueError, "invalid single entry");
        return -1;
    }
    if (terms_reserve(self, (size_t)n) < 0) {
        return -1;
    }
    e->terms_off = (uint32_t)self->terms_size;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(pairs, k);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "single values must hold (length, severity) pairs");
            return -1;
        }
        Py_ssize_t length = PyLong_AsSsize_t(PyTuple_GET_ITEM(pair, 0));
        TermSeverity *ts = &self->terms[self->terms_size];
        if ((length == -1 && PyErr_Occurred()) || read_severity(PyTuple_GET_ITEM(pair, 1), &ts->severity) < 0) {
            return -1;
        }
        if (length < 0 || length > (Py_ssize_t)UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "invalid term length");
            return -1;
        }
        ts->min_length = (uint32_t)length;
        self->terms_size++;
        e->terms_n++;
    }
    return 0;
}

/* single: {collapsed key: ((term length, severity rank), ...)} */
static int add_single(Screen *self, PyObject *single) {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(single, &pos, &key, &value)) {
        KeyEntry *e;
        if (key_add(self, key, KEY_SINGLE, &e) < 0) {
            return -1;
        }
        PyObject *pairs = PySequence_Fast(value, "single values must be sequences of pairs");
        if (pairs == NULL) {
            return -1;
        }
        int status = e != NULL ? add_single_terms(self, e, pairs) : 0;
        Py_DECREF(pairs);
        if (status < 0) {
            return -1;
        }
    }
    return 0;
}

/* Every str of `items` (a sequence) gets `flag`. */
static int add_flagged(Screen *self, PyObject *items, uint32_t flag) {
    PyObject *seq = PySequence_Fast(items, "expected a sequence of str");
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t k = 0; k < n; k++) {
        KeyEntry *e;
        if (key_add(self, PySequence_Fast_GET_ITEM(seq, k), flag, &e) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

/* phrases: {words joined by single spaces: severity rank} */
static int add_phrases(Screen *self, PyObject *phrases) {
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(phrases, &pos, &key, &value)) {
        KeyEntry *e;
        int32_t severity;
        if (read_severity(value, &severity) < 0 || key_add(self, key, KEY_PHRASE, &e) < 0) {
            return -1;
        }
        if (e != NULL) {
            e->phrase_severity = severity;
        }
    }
    return 0;
}

/* An ASCII str of exactly `n` characters (n > 0), or of any length (n == 0); NULL on error. */
static const unsigned char *ascii_arg(PyObject *obj, Py_ssize_t n, const char *what) {
    if (!PyUnicode_Check(obj) || !PyUnicode_IS_ASCII(obj) || (n > 0 && PyUnicode_GET_LENGTH(obj) != n)) {
        PyErr_Format(PyExc_ValueError, "%s: expected an ASCII str%s", what, n > 0 ? " of fixed length" : "");
        return NULL;
    }
    return PyUnicode_1BYTE_DATA(obj);
}

/* keyboard runs (four letters a-z) or rare pairs (two letters a-z). */
static int add_letter_grams(Screen *self, PyObject *items, Py_ssize_t n) {
    PyObject *seq = PySequence_Fast(items, "expected a sequence of str");
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (n == 4) {
        self->keyboard = PyMem_Calloc((size_t)count + 1, sizeof(uint32_t));
        if (self->keyboard == NULL) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        const unsigned char *g = ascii_arg(PySequence_Fast_GET_ITEM(seq, k), n, "letter grams");
        for (Py_ssize_t i = 0; g != NULL && i < n; i++) {
            if (g[i] < 'a' || g[i] > 'z') {
                PyErr_SetString(PyExc_ValueError, "letter grams must be lower-case a-z");
                g = NULL;
            }
        }
        if (g == NULL) {
            Py_DECREF(seq);
            return -1;
        }
        if (n == 2) {
            self->rare_pair[g[0] - 'a'][g[1] - 'a'] = 1;
        } else {
            self->keyboard_first[g[0] - 'a'][g[1] - 'a'] = 1;
            self->keyboard[self->n_keyboard++] =
                (uint32_t)g[0] << 24 | (uint32_t)g[1] << 16 | (uint32_t)g[2] << 8 | (uint32_t)g[3];
        }
    }
    Py_DECREF(seq);
    return 0;
}

/* One cue item: (ASCII characters: bytes, other characters: str, \s: bool, min, max). */
static int parse_cue_item(CueItem *it, PyObject *obj) {
    const char *chars;
    Py_ssize_t n_chars;
    PyObject *extras;
    if (!PyArg_ParseTuple(obj, "y#Upnn", &chars, &n_chars, &extras, &it->space, &it->min, &it->max)) {
        return -1;
    }
    if (it->min < 0 || (it->max >= 0 && it->max < it->min) || it->max < -1) {
        PyErr_SetString(PyExc_ValueError, "invalid cue item counts");
        return -1;
    }
    for (Py_ssize_t c = 0; c < n_chars; c++) {
        unsigned char ch = (unsigned char)chars[c];
        if (ch >= 128) {
            PyErr_SetString(PyExc_ValueError, "the first set of a cue item holds ASCII characters");
            return -1;
        }
        it->set[ch >> 6] |= 1ULL << (ch & 63);
    }
    Py_ssize_t n_extras = PyUnicode_GET_LENGTH(extras);
    if (n_extras > MAX_EXTRAS) {
        PyErr_SetString(PyExc_ValueError, "too many other characters in a cue item");
        return -1;
    }
    for (Py_ssize_t k = 0; k < n_extras; k++) {
        it->extras[k] = PyUnicode_READ_CHAR(extras, k);
    }
    it->n_extras = (int)n_extras;
    return 0;
}

/* A cue: a sequence of alternatives, each a non-empty sequence of items. */
static int parse_cue(Cue *cue, PyObject *obj) {
    PyObject *alts = PySequence_Fast(obj, "a cue is a sequence of alternatives");
    if (alts == NULL) {
        return -1;
    }
    Py_ssize_t n_alts = PySequence_Fast_GET_SIZE(alts), n_items = 0;
    int status = -1;
    for (Py_ssize_t a = 0; a < n_alts; a++) {
        Py_ssize_t size = PySequence_Size(PySequence_Fast_GET_ITEM(alts, a));
        if (size < 1) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "a cue alternative needs an item");
            }
            goto done;
        }
        n_items += size;
    }
    cue->items = PyMem_Calloc((size_t)n_items + 1, sizeof(CueItem));
    cue->alts = PyMem_Calloc((size_t)n_alts + 1, sizeof(Py_ssize_t));
    if (cue->items == NULL || cue->alts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    cue->n_alts = n_alts;
    Py_ssize_t at = 0;
    for (Py_ssize_t a = 0; a < n_alts; a++) {
        PyObject *items = PySequence_Fast(PySequence_Fast_GET_ITEM(alts, a), "a cue alternative is a sequence");
        if (items == NULL) {
            goto done;
        }
        cue->alts[a] = at;
        Py_ssize_t size = PySequence_Fast_GET_SIZE(items);
        for (Py_ssize_t k = 0; k < size && at < n_items; k++, at++) {
            CueItem *it = &cue->items[at];
            if (parse_cue_item(it, PySequence_Fast_GET_ITEM(items, k)) < 0) {
                Py_DECREF(items);
                goto done;
            }
        }
        Py_DECREF(items);
    }
    cue->alts[n_alts] = at;
    if (at != n_items) {
        PyErr_SetString(PyExc_RuntimeError, "cue changed while being read");
        goto done;
    }
    /* Index the alternatives by the ASCII characters they can start with. */
    cue->first_alts = PyMem_Calloc((size_t)(128 * n_alts) + 1, sizeof(Py_ssize_t));
    if (cue->first_alts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t listed = 0;
    for (Py_UCS4 c = 0; c < 128; c++) {
        cue->first_at[c] = listed;
        for (Py_ssize_t a = 0; a < n_alts; a++) {
            const CueItem *first = &cue->items[cue->alts[a]];
            if (first->min == 0 || item_has(first, c)) {
                cue->first_alts[listed++] = a;
            }
        }
    }
    cue->first_at[128] = listed;
    status = 0;
done:
    Py_DECREF(alts);
    return status;
}

/* control_ranges and emoji_ranges: sequences of (lo, hi) into self->ranges and self->tables. */
static int parse_ranges(Screen *self, PyObject *control, PyObject *emoji) {
    PyObject *seqs[2] = {PySequence_Fast(control, "control_ranges must be a sequence"), NULL};
    seqs[1] = seqs[0] ? PySequence_Fast(emoji, "emoji_ranges must be a sequence") : NULL;
    int status = -1;
    if (seqs[1] == NULL) {
        goto done;
    }
    Py_ssize_t n0 = PySequence_Fast_GET_SIZE(seqs[0]), n1 = PySequence_Fast_GET_SIZE(seqs[1]);
    self->ranges = PyMem_Calloc((size_t)(n0 + n1) + 1, sizeof(CharRange));
    if (self->ranges == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t at = 0;
    for (int s = 0; s < 2; s++) {
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seqs[s]); k++, at++) {
            unsigned int lo, hi;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seqs[s], k), "II", &lo, &hi)) {
                goto done;
            }
            if (lo > hi || hi > 0x10FFFF) {
                PyErr_SetString(PyExc_ValueError, "invalid code point range");
                goto done;
            }
            self->ranges[at].lo = lo;
            self->ranges[at].hi = hi;
        }
    }
    self->tables.control = self->ranges;
    self->tables.n_control = n0;
    fill_ascii_control(&self->tables);
    self->tables.emoji = self->ranges + n0;
    self->tables.n_emoji = n1;
    status = 0;
done:
    Py_XDECREF(seqs[0]);
    Py_XDECREF(seqs[1]);
    return status;
}

static int Screen_init(Screen *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"single", "phrases", "starts", "phrase_starts", "targets", "strip_chars",
                             "leet", "keyboard_runs", "rare_pairs", "cues", "control_ranges",
                             "emoji_ranges", "folds", "is_nfc", "counts_as_nonword", "max_chars",
                             "min_outlier_chars", NULL};
    PyObject *single, *phrases, *starts, *phrase_starts, *targets, *strip_chars, *leet, *keyboard,
        *rare, *cues, *control, *emoji, *folds, *is_nfc, *nonword;
    Py_ssize_t max_chars, min_outlier_chars;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!OOOUO!OOOOOUOOnn", kwlist, &PyDict_Type, &single,
                                     &PyDict_Type, &phrases, &starts, &phrase_starts, &targets,
                                     &strip_chars, &PyDict_Type, &leet, &keyboard, &rare, &cues,
                                     &control, &emoji, &folds, &is_nfc, &nonword, &max_chars,
                                     &min_outlier_chars)) {
        return -1;
    }
    if (self->busy > 0) {
        PyErr_SetString(PyExc_RuntimeError, "Screen is in use");
        return -1;
    }
    screen_clear(self);
    memset(self->strip, 0, sizeof(self->strip));
    memset(self->rare_pair, 0, sizeof(self->rare_pair));
    memset(self->keyboard_first, 0, sizeof(self->keyboard_first));
    if (max_chars < 0 || max_chars >= FAST_MAX_LEN || min_outlier_chars < 0) {
        PyErr_SetString(PyExc_ValueError, "invalid max_chars or min_outlier_chars");
        return -1;
    }
    if (!PyCallable_Check(is_nfc) || !PyCallable_Check(nonword)) {
        PyErr_SetString(PyExc_TypeError, "is_nfc and counts_as_nonword must be callable");
        return -1;
    }
    self->max_chars = max_chars;
    self->min_outlier_chars = min_outlier_chars;
    self->is_nfc = Py_NewRef(is_nfc);
    self->counts_as_nonword = Py_NewRef(nonword);
    self->lower_name = PyUnicode_InternFromString("lower");
    if (self->lower_name == NULL) {
        goto fail;
    }

    Py_ssize_t total = PyDict_GET_SIZE(single) + PyDict_GET_SIZE(phrases);
    PyObject *sets[3] = {starts, phrase_starts, targets};
    for (int k = 0; k < 3; k++) {
        Py_ssize_t size = PySequence_Size(sets[k]);
        if (size < 0) {
            goto fail;
        }
        total += size;
    }
    uint64_t size = 16;
    while (size < (uint64_t)total * 2 + 16) {
        size <<= 1;
    }
    self->entries = PyMem_Calloc((size_t)size, sizeof(KeyEntry));
    if (self->entries == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    self->mask = size - 1;
    self->lexicon_ascii = 1;
    if (add_single(self, single) < 0 || add_phrases(self, phrases) < 0 ||
        add_flagged(self, starts, KEY_START) < 0 || add_flagged(self, phrase_starts, KEY_PHRASE_START) < 0 ||
        add_flagged(self, targets, KEY_TARGET) < 0) {
        goto fail;
    }

    const unsigned char *strip = ascii_arg(strip_chars, 0, "strip_chars");
    if (strip == NULL) {
        goto fail;
    }
    for (Py_ssize_t k = 0; k < PyUnicode_GET_LENGTH(strip_chars); k++) {
        self->strip[strip[k]] = 1;
    }
    for (int c = 0; c < 128; c++) {
        self->leet[c] = (unsigned char)c;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(leet, &pos, &key, &value)) {
        const unsigned char *from = ascii_arg(key, 1, "leet");
        const unsigned char *to = from ? ascii_arg(value, 1, "leet") : NULL;
        if (to == NULL) {
            goto fail;
        }
        self->leet[from[0]] = to[0];
    }
    if (add_letter_grams(self, keyboard, 4) < 0 || add_letter_grams(self, rare, 2) < 0 ||
        parse_ranges(self, control, emoji) < 0) {
        goto fail;
    }
    Py_ssize_t n_folds = PyUnicode_GET_LENGTH(folds);
    self->folds = PyMem_Calloc((size_t)n_folds + 1, sizeof(Py_UCS4));
    if (self->folds == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t k = 0; k < n_folds; k++) {
        self->folds[k] = PyUnicode_READ_CHAR(folds, k);
    }
    self->tables.folds = self->folds;
    self->tables.n_folds = n_folds;

    PyObject *cue_seq = PySequence_Fast(cues, "cues must be a sequence");
    if (cue_seq == NULL) {
        goto fail;
    }
    int status = 0;
    if (PySequence_Fast_GET_SIZE(cue_seq) != N_CUES) {
        PyErr_SetString(PyExc_ValueError, "expected five cues: credential, ask, your, spam, contact");
        status = -1;
    }
    for (int k = 0; k < N_CUES && status == 0; k++) {
        status = parse_cue(&self->cues[k], PySequence_Fast_GET_ITEM(cue_seq, k));
    }
    Py_DECREF(cue_seq);
    if (status < 0) {
        goto fail;
    }
    self->ready = 1;
    return 0;
fail:
    screen_clear(self);
    return -1;
}

/* A writable C-contiguous buffer of `count` items of format `format` (4 bytes each). */
static int get_out_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t count, const char *format, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        return -1;
    }
    const char *got = view->format ? view->format : "B";
    if (view->itemsize != 4 || strcmp(got, format) != 0 || view->len != count * 4) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous buffer of %zd items of format '%s'", what,
                     count, format);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Screen the texts of the tuple `texts` (each cut to its first max_chars characters, or whole when
   max_chars < 0) into rows ([n, N_FEATURES]); sets *codes and *pending as screen() returns them. */
static int screen_batch(Screen *self, PyObject *texts, Py_ssize_t max_chars, float *rows, PyObject **codes_out,
                        PyObject **pending_out) {
    Py_ssize_t n = PyTuple_GET_SIZE(texts);
    PyObject *codes = PyList_New(n), *pending = PyList_New(0);
    int status = -1;
    TextScratch local, *s = scratch_take(self, &local);
    const Extracted none = {NULL, 0, 0};
    self->busy++;
    for (Py_ssize_t r = 0; r < n && codes != NULL && pending != NULL; r++) {
        PyObject *text = PyTuple_GET_ITEM(texts, r);
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "texts[%zd] is %s, expected str", r, Py_TYPE(text)->tp_name);
            goto done;
        }
        int32_t code = 0;
        int screened;
        if (max_chars >= 0 && PyUnicode_GET_LENGTH(text) > max_chars) {
            PyObject *cut = PyUnicode_Substring(text, 0, max_chars);
            if (cut == NULL) {
                goto done;
            }
            screened = screen_text(self, s, cut, &none, rows + r * N_FEATURES, &code);
            Py_DECREF(cut);
        } else {
            screened = screen_text(self, s, text, &none, rows + r * N_FEATURES, &code);
        }
        if (screened < 0) {
            goto done;
        }
        if (screened > 0) {
            code = screened == 1 ? SCREEN_PYTHON : SCREEN_EXTRACT;
            memset(rows + r * N_FEATURES, 0, N_FEATURES * sizeof(float));
            PyObject *index = PyLong_FromSsize_t(r);
            int failed = index == NULL || PyList_Append(pending, index) < 0;
            Py_XDECREF(index);
            if (failed) {
                goto done;
            }
        }
        PyObject *value = PyLong_FromLong(code);
        if (value == NULL) {
            goto done;
        }
        PyList_SET_ITEM(codes, r, value);
    }
    if (codes != NULL && pending != NULL) {
        *codes_out = codes;
        *pending_out = pending;
        codes = pending = NULL;
        status = 0;
    }
done:
    self->busy--;
    scratch_done(self, s);
    Py_XDECREF(codes);
    Py_XDECREF(pending);
    return status;
}

/* screen(texts, features) -> (codes, pending): see Screen_methods. */
static PyObject *Screen_screen(Screen *self, PyObject *args) {
    PyObject *texts_obj, *features_obj;
    if (!PyArg_ParseTuple(args, "OO", &texts_obj, &features_obj)) {
        return NULL;
    }
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Screen is not initialised");
        return NULL;
    }
    /* A tuple: the Python callbacks below cannot change it under the loop. */
    PyObject *texts = PySequence_Tuple(texts_obj);
    if (texts == NULL) {
        return NULL;
    }
    Py_buffer features;
    if (get_out_buffer(features_obj, &features, PyTuple_GET_SIZE(texts) * N_FEATURES, "f", "features") < 0) {
        Py_DECREF(texts);
        return NULL;
    }
    PyObject *codes, *pending, *result = NULL;
    if (screen_batch(self, texts, -1, (float *)features.buf, &codes, &pending) == 0) {
        result = PyTuple_Pack(2, codes, pending);
        Py_DECREF(codes);
        Py_DECREF(pending);
    }
    PyBuffer_Release(&features);
    Py_DECREF(texts);
    return result;
}

/* screen_new(texts, max_chars) -> (features, codes, pending): see Screen_methods. */
static PyObject *Screen_screen_new(Screen *self, PyObject *args) {
    PyObject *texts_obj;
    Py_ssize_t max_chars;
    if (!PyArg_ParseTuple(args, "On", &texts_obj, &max_chars)) {
        return NULL;
    }
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Screen is not initialised");
        return NULL;
    }
    if (max_chars < 0) {
        PyErr_SetString(PyExc_ValueError, "max_chars must be >= 0");
        return NULL;
    }
    PyObject *texts = PySequence_Tuple(texts_obj);
    if (texts == NULL) {
        return NULL;
    }
    npy_intp dims[2] = {PyTuple_GET_SIZE(texts), N_FEATURES};
    PyObject *features = PyArray_SimpleNew(2, dims, NPY_FLOAT32), *codes, *pending, *result = NULL;
    if (features != NULL &&
        screen_batch(self, texts, max_chars, PyArray_DATA((PyArrayObject *)features), &codes, &pending) == 0) {
        result = PyTuple_Pack(3, features, codes, pending);
        Py_DECREF(codes);
        Py_DECREF(pending);
    }
    Py_XDECREF(features);
    Py_DECREF(texts);
    return result;
}

/* screen_extracted(text, rest, n_urls, n_contacts, row) -> code: see Screen_methods. */
static PyObject *Screen_screen_extracted(Screen *self, PyObject *args) {
    Extracted ex;
    PyObject *text, *row_obj;
    if (!PyArg_ParseTuple(args, "UUnnO", &text, &ex.rest, &ex.n_urls, &ex.n_contacts, &row_obj)) {
        return NULL;
    }
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Screen is not initialised");
        return NULL;
    }
    if (ex.n_urls < 0 || ex.n_contacts < 0) {
        PyErr_SetString(PyExc_ValueError, "n_urls and n_contacts must be >= 0");
        return NULL;
    }
    Py_buffer row;
    if (get_out_buffer(row_obj, &row, N_FEATURES, "f", "row") < 0) {
        return NULL;
    }
    /* The arguments are borrowed: hold them while callbacks run. */
    Py_INCREF(text);
    Py_INCREF(ex.rest);
    TextScratch local, *s = scratch_take(self, &local);
    int32_t code = 0;
    self->busy++;
    int status = screen_text(self, s, text, &ex, (float *)row.buf, &code);
    self->busy--;
    scratch_done(self, s);
    Py_DECREF(ex.rest);
    Py_DECREF(text);
    PyBuffer_Release(&row);
    if (status < 0) {
        return NULL;
    }
    return PyLong_FromLong(status == 0 ? code : SCREEN_PYTHON);
}

static PyMethodDef Screen_methods[] = {
    {"screen", (PyCFunction)Screen_screen, METH_VARARGS,
     "screen(texts, features) -> (codes, pending)\n\n"
     "Per text, writes its float32 feature row into features ([n, 18], C-contiguous) and its code:\n"
     "the verdict bits, or SCREEN_PYTHON (-1: take the Python path) or SCREEN_EXTRACT (-2: run\n"
     "stats.extract_contacts, then screen_extracted), whose rows are left 0. pending lists the\n"
     "indices with a negative code."},
    {"screen_new", (PyCFunction)Screen_screen_new, METH_VARARGS,
     "screen_new(texts, max_chars) -> (features, codes, pending)\n\n"
     "screen() of each text cut to its first max_chars characters, into a new float32 NumPy array\n"
     "[n, 18]."},
    {"screen_extracted", (PyCFunction)Screen_screen_extracted, METH_VARARGS,
     "screen_extracted(text, rest, n_urls, n_contacts, row) -> code\n\n"
     "screen() for a SCREEN_EXTRACT text, given what stats.extract_contacts found in its clean\n"
     "text: rest, len(urls) and emails + phones. Writes the feature row into row (18 float32)\n"
     "and returns the verdict bits (with SCREEN_SPAM_CUE; spam_link is the caller's), or\n"
     "SCREEN_PYTHON."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScreenType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "inference._native.Screen",
    .tp_basicsize = sizeof(Screen),
    .tp_dealloc = (destructor)Screen_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Screen(...): built by inference.anomaly.screen.build_screen",
    .tp_methods = Screen_methods,
    .tp_init = (initproc)Screen_init,
    .tp_new = PyType_GenericNew,
};

/* ==== predictions from the session's outputs ====================================================
 *
 * Results.build is the end of inference.runtime._predict_chunk: per text, the best label of each
 * head (runtime._argmax: the first maximum, or the first NaN, as np.argmax), the sentiment scores
 * as a dict, the forest's score_samples calibrated (detector.Calibration.apply_one) and combined
 * with the screen's verdict code (detector._from_code, rounding with round(score, 6)), and one
 * Prediction (a tuple subclass, filled as tuple.__new__ fills it). The Python in runtime.py and
 * anomaly/detector.py is the reference (tests/inference/test_native_results.py).
 */

typedef struct {
    PyObject_HEAD
    PyTypeObject *prediction; /* runtime.Prediction: a tuple subclass of PREDICTION_FIELDS items */
    PyObject *sentiment_labels, *language_labels; /* tuples of str */
    double *xs, *ys;                               /* calibration knots */
    Py_ssize_t n_knots;
    PyObject *reasons;  /* tuple: verdict (code & mask) -> tuple of reason str */
    double *floors;     /* verdict -> score floor */
    Py_ssize_t n_verdicts; /* a power of two */
    long nothing, long_text; /* the NOTHING and LONG bits */
    PyObject *outlier, *no_reasons; /* ("outlier",) and () */
    PyObject *zero;  /* 0.0 */
} Results;

#define PREDICTION_FIELDS 10

static void Results_clear(Results *self) {
    Py_CLEAR(self->prediction);
    Py_CLEAR(self->sentiment_labels);
    Py_CLEAR(self->language_labels);
    Py_CLEAR(self->reasons);
    Py_CLEAR(self->outlier);
    Py_CLEAR(self->no_reasons);
    Py_CLEAR(self->zero);
    PyMem_Free(self->xs);
    PyMem_Free(self->ys);
    PyMem_Free(self->floors);
    self->xs = self->ys = self->floors = NULL;
}

static void Results_dealloc(Results *self) {
    Results_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* A new array of the floats of the sequence `obj` (at least `min` of them); NULL on error. */
static double *float_array(PyObject *obj, Py_ssize_t min, Py_ssize_t *n, const char *what) {
    PyObject *seq = PySequence_Fast(obj, what);
    if (seq == NULL) {
        return NULL;
    }
    *n = PySequence_Fast_GET_SIZE(seq);
    double *out = *n >= min ? PyMem_Malloc((size_t)*n * sizeof(double)) : NULL;
    if (*n < min) {
        PyErr_Format(PyExc_ValueError, "%s needs at least %zd values", what, min);
    } else if (out == NULL) {
        PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; out != NULL && i < *n; i++) {
        out[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (out[i] == -1.0 && PyErr_Occurred()) {
            PyMem_Free(out);
            out = NULL;
        }
    }
    Py_DECREF(seq);
    return out;
}

static int str_tuple(PyObject *obj, const char *what) {
    if (!PyTuple_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple of str", what);
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(obj); i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(obj, i))) {
            PyErr_Format(PyExc_TypeError, "%s must be a tuple of str", what);
            return 0;
        }
    }
    return 1;
}

static int Results_init(Results *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"prediction", "sentiment_labels", "language_labels", "xs", "ys", "verdicts",
                             "nothing", "long", "outlier", NULL};
    PyObject *prediction, *s_labels, *l_labels, *xs, *ys, *verdicts, *outlier;
    long nothing, long_text;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!OOO!llO!", kwlist, &PyType_Type, &prediction,
                                     &PyTuple_Type, &s_labels, &PyTuple_Type, &l_labels, &xs, &ys, &PyList_Type,
                                     &verdicts, &nothing, &long_text, &PyTuple_Type, &outlier)) {
        return -1;
    }
    Results_clear(self);
    PyTypeObject *type = (PyTypeObject *)prediction;
    if (!PyType_IsSubtype(type, &PyTuple_Type) || type->tp_itemsize != PyTuple_Type.tp_itemsize ||
        type->tp_basicsize != PyTuple_Type.tp_basicsize) {
        PyErr_SetString(PyExc_TypeError, "prediction must be a tuple subclass without fields of its own");
        return -1;
    }
    if (!str_tuple(s_labels, "sentiment_labels") || !str_tuple(l_labels, "language_labels") ||
        !str_tuple(outlier, "outlier")) {
        return -1;
    }
    if (PyTuple_GET_SIZE(s_labels) == 0 || PyTuple_GET_SIZE(l_labels) == 0) {
        PyErr_SetString(PyExc_ValueError, "labels must not be empty");
        return -1;
    }
    Py_ssize_t n_ys = 0;
    self->xs = float_array(xs, 2, &self->n_knots, "xs");
    self->ys = self->xs ? float_array(ys, 2, &n_ys, "ys") : NULL;
    if (self->ys == NULL) {
        return -1;
    }
    if (n_ys != self->n_knots) {
        PyErr_SetString(PyExc_ValueError, "xs and ys differ in length");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(verdicts);
    if (n == 0 || (n & (n - 1)) != 0) {
        PyErr_SetString(PyExc_ValueError, "verdicts must have a power of two entries");
        return -1;
    }
    self->reasons = PyTuple_New(n);
    self->floors = PyMem_Malloc((size_t)n * sizeof(double));
    if (self->reasons == NULL || self->floors == NULL) {
        if (self->floors == NULL) {
            PyErr_NoMemory();
        }
        return -1;
    }
    self->n_verdicts = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *reasons, *item = PyList_GET_ITEM(verdicts, i);
        double floor;
        if (!PyArg_ParseTuple(item, "O!d", &PyTuple_Type, &reasons, &floor) || !str_tuple(reasons, "reasons")) {
            return -1;
        }
        PyTuple_SET_ITEM(self->reasons, i, Py_NewRef(reasons));
        self->floors[i] = floor;
    }
    self->prediction = (PyTypeObject *)Py_NewRef(prediction);
    self->sentiment_labels = Py_NewRef(s_labels);
    self->language_labels = Py_NewRef(l_labels);
    self->outlier = Py_NewRef(outlier);
    self->no_reasons = PyTuple_New(0);
    self->zero = PyFloat_FromDouble(0.0);
    self->nothing = nothing;
    self->long_text = long_text;
    return self->no_reasons && self->zero ? 0 : -1;
}

/* Calibration.apply_one */
static double calibrate(const Results *self, double x) {
    const double *xs = self->xs, *ys = self->ys;
    Py_ssize_t n = self->n_knots;
    if (isnan(x)) {
        return x;
    }
    if (x <= xs[0]) {
        return ys[0];
    }
    if (x >= xs[n - 1]) {
        return ys[n - 1];
    }
    /* bisect_right(xs, x) - 1: the last knot <= x */
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (x < xs[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Py_ssize_t j = lo - 1;
    if (xs[j] == x) {
        return ys[j];
    }
    double slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j]);
    double dx = x - xs[j];
    double scaled = slope * dx;
    return scaled + ys[j];
}

/* round(x, 6) as Python's float.__round__ computes it: the correctly rounded decimal string with
   six decimals, read back. */
static int round6(double x, double *out) {
    if (!isfinite(x)) {
        *out = x;
        return 0;
    }
    char *text = PyOS_double_to_string(x, 'f', 6, 0, NULL);
    if (text == NULL) {
        return -1;
    }
    *out = PyOS_string_to_double(text, NULL, NULL);
    PyMem_Free(text);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* runtime._argmax over one row of k doubles. */
static Py_ssize_t argmax_row(const double *row, Py_ssize_t k) {
    Py_ssize_t best = 0;
    for (Py_ssize_t i = 1; i < k; i++) {
        double value = row[i];
        if (isnan(value)) {
            return isnan(row[best]) ? best : i;
        }
        if (value > row[best]) {
            best = i;
        }
    }
    return best;
}

/* The C-contiguous [n, k] array of `type` in obj (k > 0 given, or any k when *k is 0). */
static const char *matrix(PyObject *obj, int type, Py_ssize_t n, Py_ssize_t *k, const char *what) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a NumPy array", what);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != type || PyArray_NDIM(a) != 2 || !PyArray_IS_C_CONTIGUOUS(a) ||
        PyArray_DIM(a, 0) != n || (*k && PyArray_DIM(a, 1) != *k) || PyArray_DIM(a, 1) == 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous %zd x %zd array of %s", what, n, *k,
                     type == NPY_FLOAT64 ? "float64" : "float32");
        return NULL;
    }
    *k = PyArray_DIM(a, 1);
    return PyArray_DATA(a);
}

/* The anomaly fields (score, flagged, reasons) of text i: new references in out[0..3). */
static int anomaly_fields(const Results *self, long code, double raw, PyObject *override, PyObject **out) {
    if (override != NULL) {
        if (!PyTuple_Check(override) || PyTuple_GET_SIZE(override) != 3) {
            PyErr_SetString(PyExc_TypeError, "an override must be an AnomalyResult");
            return -1;
        }
        for (int f = 0; f < 3; f++) {
            out[f] = Py_NewRef(PyTuple_GET_ITEM(override, f));
        }
        return 0;
    }
    if (code < 0) {
        PyErr_Format(PyExc_ValueError, "code %ld needs an override", code);
        return -1;
    }
    if (code & self->nothing) {
        out[0] = Py_NewRef(self->zero);
        out[1] = Py_NewRef(Py_False);
        out[2] = Py_NewRef(self->no_reasons);
        return 0;
    }
    double iso = calibrate(self, -raw);
    Py_ssize_t verdict = (Py_ssize_t)(code & (self->n_verdicts - 1));
    PyObject *reasons = PyTuple_GET_ITEM(self->reasons, verdict);
    double floor = self->floors[verdict];
    double score = floor > iso ? floor : iso;
    if (PyTuple_GET_SIZE(reasons) == 0) {
        if (iso >= 0.5 && (code & self->long_text)) {
            reasons = self->outlier;
        } else if (score > 0.49) {
            score = 0.49;
        }
    }
    double rounded;
    if (round6(score, &rounded) < 0) {
        return -1;
    }
    out[0] = PyFloat_FromDouble(rounded);
    out[1] = Py_NewRef(PyTuple_GET_SIZE(reasons) ? Py_True : Py_False);
    out[2] = Py_NewRef(reasons);
    return out[0] ? 0 : -1;
}

/* build(sentiment, language, scores, codes, overrides, categories, versions) -> list[Prediction]:
   see Results_methods. */
static PyObject *Results_build(Results *self, PyObject *const *args, Py_ssize_t nargs) {
    if (self->prediction == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Results is not initialised");
        return NULL;
    }
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "build(sentiment, language, scores, codes, overrides, categories, versions)");
        return NULL;
    }
    PyObject *codes = args[3], *overrides = args[4], *categories = args[5], *versions = args[6];
    if (!PyArray_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "sentiment must be a NumPy array");
        return NULL;
    }
    Py_ssize_t n = PyArray_NDIM((PyArrayObject *)args[0]) == 2 ? PyArray_DIM((PyArrayObject *)args[0], 0) : -1;
    Py_ssize_t ks = PyTuple_GET_SIZE(self->sentiment_labels), kl = PyTuple_GET_SIZE(self->language_labels);
    Py_ssize_t one = 1;
    const double *sent = (const double *)matrix(args[0], NPY_FLOAT64, n, &ks, "sentiment");
    const double *lang = sent ? (const double *)matrix(args[1], NPY_FLOAT64, n, &kl, "language") : NULL;
    if (lang == NULL) {
        return NULL;
    }
    const float *scores = NULL;
    if (args[2] != Py_None) {
        scores = (const float *)matrix(args[2], NPY_FLOAT32, n, &one, "scores");
        if (scores == NULL) {
            return NULL;
        }
        if (!PyList_Check(codes) || PyList_GET_SIZE(codes) != n) {
            PyErr_SetString(PyExc_TypeError, "codes must be a list with one code per row");
            return NULL;
        }
    }
    if ((overrides != Py_None && !PyDict_Check(overrides)) ||
        (categories != Py_None && (!PyList_Check(categories) || PyList_GET_SIZE(categories) != n))) {
        PyErr_SetString(PyExc_TypeError, "overrides must be a dict or None, categories a list per row or None");
        return NULL;
    }
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *fields[PREDICTION_FIELDS] = {NULL};
        const double *s_row = sent + i * ks, *l_row = lang + i * kl;
        Py_ssize_t si = argmax_row(s_row, ks), li = argmax_row(l_row, kl);
        int ok = 1;
        fields[0] = Py_NewRef(PyTuple_GET_ITEM(self->sentiment_labels, si));
        fields[1] = PyDict_New();
        for (Py_ssize_t j = 0; ok && j < ks; j++) {
            PyObject *value = fields[1] ? PyFloat_FromDouble(s_row[j]) : NULL;
            ok = value != NULL &&
                 PyDict_SetItem(fields[1], PyTuple_GET_ITEM(self->sentiment_labels, j), value) == 0;
            Py_XDECREF(value);
        }
        fields[2] = Py_NewRef(PyTuple_GET_ITEM(self->language_labels, li));
        fields[3] = PyFloat_FromDouble(l_row[li]);
        ok = ok && fields[3] != NULL;
        if (ok && categories != Py_None) {
            PyObject *pair = PyList_GET_ITEM(categories, i);
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
                PyErr_SetString(PyExc_TypeError, "a category must be a (label, score) tuple");
                ok = 0;
            } else {
                fields[4] = Py_NewRef(PyTuple_GET_ITEM(pair, 0));
                fields[5] = Py_NewRef(PyTuple_GET_ITEM(pair, 1));
            }
        } else if (ok) {
            fields[4] = Py_NewRef(Py_None);
            fields[5] = Py_NewRef(Py_None);
        }
        if (ok && scores == NULL) {
            fields[6] = Py_NewRef(self->zero);
            fields[7] = Py_NewRef(Py_False);
            fields[8] = Py_NewRef(self->no_reasons);
        } else if (ok) {
            long code = PyLong_AsLong(PyList_GET_ITEM(codes, i));
            PyObject *override = NULL;
            if (code == -1 && PyErr_Occurred()) {
                ok = 0;
            } else if (overrides != Py_None) {
                PyObject *key = PyLong_FromSsize_t(i);
                override = key ? PyDict_GetItemWithError(overrides, key) : NULL;
                Py_XDECREF(key);
                ok = key != NULL && !PyErr_Occurred();
            }
            ok = ok && anomaly_fields(self, code, (double)scores[i], override, fields + 6) == 0;
        }
        fields[9] = Py_NewRef(versions);
        PyObject *prediction = ok ? self->prediction->tp_alloc(self->prediction, PREDICTION_FIELDS) : NULL;
        if (prediction == NULL) {
            for (int f = 0; f < PREDICTION_FIELDS; f++) {
                Py_XDECREF(fields[f]);
            }
            Py_CLEAR(out);
            break;
        }
        for (int f = 0; f < PREDICTION_FIELDS; f++) {
            PyTuple_SET_ITEM(prediction, f, fields[f]);
        }
        PyList_SET_ITEM(out, i, prediction);
    }
    return out;
}

static PyMethodDef Results_methods[] = {
    {"build", (PyCFunction)(void (*)(void))Results_build, METH_FASTCALL,
     "build(sentiment, language, scores, codes, overrides, categories, versions) -> list\n\n"
     "One Prediction per row of sentiment ([n, Ks] float64) and language ([n, Kl] float64).\n"
     "scores: the forest's score_samples ([n, 1] float32) with codes (the screen's code per row),\n"
     "or None without a detector; overrides: {row: AnomalyResult} for the rows with a negative\n"
     "code, or None; categories: a (label, score) per row, or None; versions: every\n"
     "Prediction's model_versions."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ResultsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "inference._native.Results",
    .tp_basicsize = sizeof(Results),
    .tp_dealloc = (destructor)Results_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Results(prediction, sentiment_labels, language_labels, xs, ys, verdicts, nothing, long,\n"
              "outlier): built by inference.runtime",
    .tp_methods = Results_methods,
    .tp_init = (initproc)Results_init,
    .tp_new = PyType_GenericNew,
};

/* ---- text normalisation, fast path for ASCII ------------------------------------------------
 *
 * normalize_ascii(text, max_chars) is inference.text.normalize for an ASCII text with no '/',
 * '@' or "www." (the URL and @mention rewrites), else None. On ASCII, NFKC changes nothing,
 * _INVISIBLE is [\x00-\x08\x0e-\x1b\x7f], lower() maps A-Z, _REPEAT cuts runs of 3+ identical
 * characters to two, and split() splits on Py_UNICODE_ISSPACE.
 */
static PyObject *ascii_normal_form(PyObject *text, Py_ssize_t max_chars);

static PyObject *normalize_ascii(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "normalize_ascii(text: str, max_chars: int)");
        return NULL;
    }
    PyObject *text = args[0];
    Py_ssize_t max_chars = PyLong_AsSsize_t(args[1]);
    if (max_chars == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (max_chars < 0) {
        PyErr_SetString(PyExc_ValueError, "max_chars must be >= 0");
        return NULL;
    }
    return ascii_normal_form(text, max_chars);
}

/* normalize_ascii's work for a str and max_chars >= 0: a new reference, or None (a new reference)
   outside the fast path, or NULL with an exception set. */
static PyObject *ascii_normal_form(PyObject *text, Py_ssize_t max_chars) {
    if (!PyUnicode_IS_ASCII(text)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(text);
    len = len < max_chars ? len : max_chars;
    const unsigned char *t = PyUnicode_1BYTE_DATA(text);
    unsigned char *buf = PyMem_Malloc((size_t)len + 1);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    /* _INVISIBLE.sub("", text).lower() */
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = t[i];
        if (c <= 0x08 || (c >= 0x0e && c <= 0x1b) || c == 0x7f) {
            continue;
        }
        buf[n++] = ascii_lower(c);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (buf[i] == '/' || buf[i] == '@' ||
            (i + 3 < n && buf[i] == 'w' && buf[i + 1] == 'w' && buf[i + 2] == 'w' && buf[i + 3] == '.')) {
            PyMem_Free(buf);
            Py_RETURN_NONE;
        }
    }
    /* _REPEAT.sub(r"\1\1") then " ".join(split()), in place: runs of whitespace become one space
       (none at the ends); any other character is dropped when the two before it (in the text
       before this pass, kept in before1/before2: buf is being overwritten) are the same. */
    Py_ssize_t k = 0;
    int space = 0, before1 = -1, before2 = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = buf[i];
        int repeat = before1 == c && before2 == c;
        before2 = before1;
        before1 = c;
        if (Py_UNICODE_ISSPACE(c)) {
            space = k > 0;
            continue;
        }
        if (repeat) {
            continue;
        }
        if (space) {
            buf[k++] = ' ';
            space = 0;
        }
        buf[k++] = c;
    }
    PyObject *result = PyUnicode_New(k, 127);
    if (result != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(result), buf, (size_t)k);
    }
    PyMem_Free(buf);
    return result;
}

/* normalize_batch(texts, normalize, max_chars) -> list of str: see native_functions. */
static PyObject *normalize_batch(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "normalize_batch(texts: list, normalize, max_chars: int)");
        return NULL;
    }
    if (!PyList_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "texts must be a list of str, got %s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    Py_ssize_t max_chars = PyLong_AsSsize_t(args[2]);
    if (max_chars == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (max_chars < 0) {
        PyErr_SetString(PyExc_ValueError, "max_chars must be >= 0");
        return NULL;
    }
    /* A tuple: the normalize callback cannot change the batch under the loop. */
    PyObject *texts = PyList_AsTuple(args[0]);
    if (texts == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(texts);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; i < n && out != NULL; i++) {
        PyObject *text = PyTuple_GET_ITEM(texts, i);
        if (!PyUnicode_Check(text)) {
            PyErr_Format(PyExc_TypeError, "texts[%zd] is %s, expected str", i, Py_TYPE(text)->tp_name);
            Py_CLEAR(out);
            break;
        }
        PyObject *clean = ascii_normal_form(text, max_chars);
        if (clean == Py_None) {
            Py_DECREF(clean);
            clean = PyObject_CallOneArg(args[1], text);
            if (clean != NULL && !PyUnicode_Check(clean)) {
                PyErr_Format(PyExc_TypeError, "normalize returned %s, expected str", Py_TYPE(clean)->tp_name);
                Py_CLEAR(clean);
            }
        }
        if (clean != NULL && PyUnicode_GET_LENGTH(clean) == 0) {
            PyErr_Format(PyExc_ValueError, "texts[%zd] is empty or whitespace-only", i);
            Py_CLEAR(clean);
        }
        if (clean == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, clean);
    }
    Py_DECREF(texts);
    return out;
}

static PyMethodDef native_functions[] = {
    {"analyse_ascii", (PyCFunction)(void (*)(void))analyse_ascii, METH_FASTCALL,
     "analyse_ascii(text, max_chars) -> tuple of counts, or None outside the fast path."},
    {"normalize_batch", (PyCFunction)(void (*)(void))normalize_batch, METH_FASTCALL,
     "normalize_batch(texts, normalize, max_chars) -> the normal form of each text: normalize_ascii\n"
     "where it applies, else normalize(text). Raises TypeError when texts is not a list or an item\n"
     "is not a str, ValueError when a normal form is empty, naming the index."},
    {"normalize_ascii", (PyCFunction)(void (*)(void))normalize_ascii, METH_FASTCALL,
     "normalize_ascii(text, max_chars) -> inference.text.normalize(text), or None when not ASCII or\n"
     "when it has '/', '@' or 'www.'."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "inference._native",
    "Compiled featurizer, text normalisation and anomaly-screening loops.", -1, native_functions,
};

PyMODINIT_FUNC PyInit__native(void) {
    import_array();
    if (PyType_Ready(&FeatureIndexType) < 0 || PyType_Ready(&ScreenType) < 0 ||
        PyType_Ready(&ResultsType) < 0) {
        return NULL;
    }
    init_ascii_tables();
    PyObject *module = PyModule_Create(&native_module);
    if (module == NULL) {
        return NULL;
    }
    PyObject *rules = Py_BuildValue("(ssssss)", "abuse", "spam_link", "contact_harvest", "gibberish",
                                    "repetition", "shouting");
    PyObject *severities = rules ? Py_BuildValue("(sss)", "mild", "strong", "slur") : NULL;
    int failed = severities == NULL ||
                 PyModule_AddObjectRef(module, "FeatureIndex", (PyObject *)&FeatureIndexType) < 0 ||
                 PyModule_AddObjectRef(module, "Screen", (PyObject *)&ScreenType) < 0 ||
                 PyModule_AddObjectRef(module, "Results", (PyObject *)&ResultsType) < 0 ||
                 PyModule_AddObjectRef(module, "SCREEN_RULES", rules) < 0 ||
                 PyModule_AddObjectRef(module, "SCREEN_SEVERITIES", severities) < 0 ||
                 PyModule_AddIntConstant(module, "SCREEN_MILD", SCREEN_MILD) < 0 ||
                 PyModule_AddIntConstant(module, "SCREEN_NOTHING", SCREEN_NOTHING) < 0 ||
                 PyModule_AddIntConstant(module, "SCREEN_LONG", SCREEN_LONG) < 0 ||
                 PyModule_AddIntConstant(module, "SCREEN_SPAM_CUE", SCREEN_SPAM_CUE) < 0 ||
                 PyModule_AddIntConstant(module, "SCREEN_PYTHON", SCREEN_PYTHON) < 0 ||
                 PyModule_AddIntConstant(module, "SCREEN_EXTRACT", SCREEN_EXTRACT) < 0 ||
                 PyModule_AddIntConstant(module, "SCREEN_FEATURES", N_FEATURES) < 0 ||
                 PyModule_AddIntConstant(module, "ABI", 5) < 0;
    Py_XDECREF(rules);
    Py_XDECREF(severities);
    if (failed) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
