/* The fast method's innermost loop in C: scoring candidate plans and ranking templates.
 *
 * The search scores tens of plans per move that share every app but the one being moved,
 * and ranks ~1,000 templates per app under each load. In Python and numpy that cost
 * microseconds of interpreter and array-call overhead per plan, not arithmetic. This module
 * computes exactly what synergy.planning.batch, .throughput and .shortlist compute (the same
 * operations on the same doubles, in the same order: unit tests compare them bit for bit);
 * where it is not built, their Python and numpy code runs instead.
 *
 *   rates_many(base, trials, boards, allow_parallel, min_batch): batch.rates_with whole, from
 *       packed frame costs (throughput.rates is a batch of one)
 *   fill(demands, caps): throughput.water_fill, the plain water-filling
 *   fill_many(base, base_caps, trials): batch._water_fill_many, the batched one (rates_many's
 *       core, callable on its own so that the tests compare it with numpy's directly)
 *   proxy_rates(...), select_ranked(...): shortlist.Ranker's proxy and its choice of templates
 *
 * fill_many's base: per base app, its (resource number, busy seconds) pairs; base_caps: their
 * rate caps; trials: per trial (its app's pairs, its cap, {base app index: that app's pairs
 * in this trial}). A pair sets its resource's seconds (a later pair of one app and resource
 * wins).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Same tolerance as the Python water-fillings. */
#define FILL_EPS 1e-9

/* One parsed (app row, resource number, seconds) assignment. */
typedef struct {
    Py_ssize_t trial; /* -1: every trial (a base app) */
    Py_ssize_t app;
    long long number;
    double seconds;
    int clear_row; /* a redone row: zero it before its first pair */
} Pair;

typedef struct {
    Pair *items;
    Py_ssize_t n, cap;
} Pairs;

/* A growing array with room for one more item (doubling from `first`): the same array, a
 * moved one (*cap updated), or NULL with MemoryError set (the old one still held). */
static void *with_room(void *items, Py_ssize_t *cap, Py_ssize_t n, size_t item_size, Py_ssize_t first) {
    if (n < *cap) return items;
    Py_ssize_t bigger = *cap ? *cap * 2 : first;
    void *grown = realloc(items, (size_t)bigger * item_size);
    if (grown == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *cap = bigger;
    return grown;
}

static int pairs_push(Pairs *p, Pair item) {
    Pair *items = with_room(p->items, &p->cap, p->n, sizeof(Pair), 256);
    if (items == NULL) return -1;
    p->items = items;
    p->items[p->n++] = item;
    return 0;
}

/* Appends an app's (number, seconds) pairs; the first one clears the row when asked. */
static int parse_demand(PyObject *demand, Py_ssize_t trial, Py_ssize_t app, int clear_row, Pairs *out) {
    PyObject *seq = PySequence_Fast(demand, "an app's demand must be a sequence of (resource, seconds) pairs");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    if (n == 0 && clear_row) {
        /* A redone app with no work left: its row is still cleared. */
        Pair marker = {trial, app, -1, 0.0, 2};
        if (pairs_push(out, marker) < 0) goto fail;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *pair = items[k];
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "a demand pair must be a (resource, seconds) tuple");
            goto fail;
        }
        long long number = PyLong_AsLongLong(PyTuple_GET_ITEM(pair, 0));
        if (number == -1 && PyErr_Occurred()) goto fail;
        if (number < 0) {
            PyErr_SetString(PyExc_ValueError, "a resource number must not be negative");
            goto fail;
        }
        double seconds = PyFloat_AsDouble(PyTuple_GET_ITEM(pair, 1));
        if (seconds == -1.0 && PyErr_Occurred()) goto fail;
        Pair item = {trial, app, number, seconds, clear_row && k == 0};
        if (pairs_push(out, item) < 0) goto fail;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

static int compare_numbers(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static Py_ssize_t column_of(const long long *numbers, Py_ssize_t n, long long number) {
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (numbers[mid] < number)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The filling of one trial: numpy's steps, with its arrays' rows for this trial. */
static int fill_trial(const double *work, const double *cap, Py_ssize_t apps, Py_ssize_t resources, double *got,
                      double *scratch, unsigned char *flags) {
    double *residual = scratch;
    double *use = residual + resources;
    double *open_cap = use + resources;
    double *weight = open_cap + apps;
    double *slack = weight + apps;
    unsigned char *active = flags;
    unsigned char *saturated = flags + apps;
    for (Py_ssize_t r = 0; r < resources; r++) residual[r] = 1.0;
    for (Py_ssize_t a = 0; a < apps; a++) {
        active[a] = cap[a] > 0;
        got[a] = 0.0;
        open_cap[a] = active[a] ? cap[a] : INFINITY;
        weight[a] = active[a] ? 1.0 : 0.0;
        slack[a] = FILL_EPS * (cap[a] > 1.0 || isnan(cap[a]) ? cap[a] : 1.0);
    }
    double level = 0.0;
    for (Py_ssize_t step_no = 0; step_no < apps + 1; step_no++) {
        int any = 0;
        for (Py_ssize_t a = 0; a < apps; a++) any |= active[a];
        if (!any) return 0;
        /* use = einsum("ar,a->r", work, weight): a running sum over the apps, in order. */
        for (Py_ssize_t r = 0; r < resources; r++) use[r] = 0.0;
        for (Py_ssize_t a = 0; a < apps; a++) {
            const double *row = work + a * resources;
            double w = weight[a];
            for (Py_ssize_t r = 0; r < resources; r++) use[r] += row[r] * w;
        }
        double per = INFINITY;
        for (Py_ssize_t r = 0; r < resources; r++) {
            if (use[r] > 0) {
                double t = residual[r] / use[r];
                if (t < per) per = t;
            }
        }
        double lowest_cap = INFINITY;
        for (Py_ssize_t a = 0; a < apps; a++)
            if (open_cap[a] < lowest_cap) lowest_cap = open_cap[a];
        double to_cap = lowest_cap - level;
        double step = to_cap <= per ? to_cap : per;
        level += step;
        for (Py_ssize_t r = 0; r < resources; r++) {
            residual[r] -= step * use[r];
            saturated[r] = residual[r] <= FILL_EPS && use[r] > 0;
        }
        for (Py_ssize_t a = 0; a < apps; a++) {
            if (!active[a]) continue;
            const double *row = work + a * resources;
            int hit = 0;
            for (Py_ssize_t r = 0; r < resources && !hit; r++) hit = row[r] > 0 && saturated[r];
            if (hit || cap[a] - level <= slack[a]) {
                got[a] = level;
                active[a] = 0;
                open_cap[a] = INFINITY;
                weight[a] = 0.0;
            }
        }
    }
    for (Py_ssize_t a = 0; a < apps; a++) {
        if (active[a]) {
            PyErr_SetString(PyExc_AssertionError, "water-filling made no progress");
            return -1;
        }
    }
    return 0;
}

/* The batched filling (fill_many's) of pairs into rates[t * apps + a]; 0, or -1 with an
 * exception set. */
static int fill_many_core(const Pairs *pairs, Py_ssize_t n_trials, Py_ssize_t apps, const double *cap, double *rates) {
    int status = -1;
    long long *numbers = NULL;
    double *work = NULL, *scratch = NULL;
    unsigned char *flags = NULL;
    /* Resources numbered densely over everything the batch uses (their order changes no
     * figure: sums run over apps, and the per-resource minimum and test are order-free). */
    numbers = malloc((size_t)(pairs->n ? pairs->n : 1) * sizeof(long long));
    if (numbers == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    Py_ssize_t n_numbers = 0;
    for (Py_ssize_t k = 0; k < pairs->n; k++)
        if (pairs->items[k].number >= 0) numbers[n_numbers++] = pairs->items[k].number;
    qsort(numbers, (size_t)n_numbers, sizeof(long long), compare_numbers);
    Py_ssize_t resources = 0;
    for (Py_ssize_t k = 0; k < n_numbers; k++)
        if (resources == 0 || numbers[resources - 1] != numbers[k]) numbers[resources++] = numbers[k];
    Py_ssize_t width = resources ? resources : 1;
    size_t cells = (size_t)(n_trials ? n_trials : 1) * (size_t)apps * (size_t)width;
    work = calloc(cells, sizeof(double));
    scratch = malloc((size_t)(2 * width + 3 * apps) * sizeof(double));
    flags = malloc((size_t)(apps + width));
    if (work == NULL || scratch == NULL || flags == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t k = 0; k < pairs->n; k++) {
        const Pair *p = &pairs->items[k];
        Py_ssize_t column = p->number >= 0 ? column_of(numbers, resources, p->number) : -1;
        Py_ssize_t first = p->trial < 0 ? 0 : p->trial;
        Py_ssize_t last = p->trial < 0 ? n_trials : p->trial + 1;
        for (Py_ssize_t t = first; t < last; t++) {
            double *row = work + ((size_t)t * (size_t)apps + (size_t)p->app) * (size_t)width;
            if (p->clear_row) memset(row, 0, (size_t)width * sizeof(double));
            if (column >= 0) row[column] = p->seconds;
        }
    }
    /* np.maximum(work, 0.0): negatives to zero (NaN stays NaN). */
    for (size_t k = 0; k < cells; k++)
        if (work[k] < 0) work[k] = 0.0;
    for (Py_ssize_t t = 0; t < n_trials; t++) {
        const double *w = work + (size_t)t * (size_t)apps * (size_t)width;
        for (Py_ssize_t a = 0; a < apps; a++) {
            double c = cap[t * apps + a];
            if (!(c > 0) || !isinf(c)) continue;
            int uses = 0;
            for (Py_ssize_t r = 0; r < width && !uses; r++) uses = w[a * width + r] > 0;
            if (!uses) {
                PyErr_SetString(PyExc_ValueError, "an app with no work must have a finite rate cap");
                goto out;
            }
        }
    }
    for (Py_ssize_t t = 0; t < n_trials; t++) {
        const double *w = work + (size_t)t * (size_t)apps * (size_t)width;
        if (fill_trial(w, cap + t * apps, apps, width, rates + t * apps, scratch, flags) < 0) goto out;
    }
    status = 0;
out:
    free(numbers);
    free(work);
    free(scratch);
    free(flags);
    return status;
}

/* A list of n lists of apps floats. */
static PyObject *rate_lists(const double *rates, Py_ssize_t n, Py_ssize_t apps) {
    PyObject *result = PyList_New(n);
    if (result == NULL) return NULL;
    for (Py_ssize_t t = 0; t < n; t++) {
        PyObject *row = PyList_New(apps);
        if (row == NULL) goto fail;
        PyList_SET_ITEM(result, t, row);
        for (Py_ssize_t a = 0; a < apps; a++) {
            PyObject *value = PyFloat_FromDouble(rates[t * apps + a]);
            if (value == NULL) goto fail;
            PyList_SET_ITEM(row, a, value);
        }
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

static PyObject *fill_many(PyObject *self, PyObject *args) {
    PyObject *base, *base_caps, *trials;
    if (!PyArg_ParseTuple(args, "OOO", &base, &base_caps, &trials)) return NULL;
    PyObject *base_seq = NULL, *caps_seq = NULL, *trial_seq = NULL, *result = NULL;
    Pairs pairs = {NULL, 0, 0};
    double *cap = NULL, *got = NULL;

    /* One at a time: none may be called with an exception already set. */
    base_seq = PySequence_Fast(base, "base must be a sequence of demands");
    if (base_seq == NULL) goto done;
    caps_seq = PySequence_Fast(base_caps, "base_caps must be a sequence of floats");
    if (caps_seq == NULL) goto done;
    trial_seq = PySequence_Fast(trials, "trials must be a sequence of (demand, cap, redone)");
    if (trial_seq == NULL) goto done;
    Py_ssize_t n_base = PySequence_Fast_GET_SIZE(base_seq);
    Py_ssize_t n_trials = PySequence_Fast_GET_SIZE(trial_seq);
    if (PySequence_Fast_GET_SIZE(caps_seq) != n_base) {
        PyErr_SetString(PyExc_ValueError, "base and base_caps differ in length");
        goto done;
    }
    Py_ssize_t apps = n_base + 1;
    cap = malloc((size_t)(n_trials ? n_trials : 1) * (size_t)apps * sizeof(double));
    if (cap == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_base; i++) {
        if (parse_demand(PySequence_Fast_GET_ITEM(base_seq, i), -1, i, 0, &pairs) < 0) goto done;
        double c = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(caps_seq, i));
        if (c == -1.0 && PyErr_Occurred()) goto done;
        for (Py_ssize_t t = 0; t < n_trials; t++) cap[t * apps + i] = c;
    }
    for (Py_ssize_t t = 0; t < n_trials; t++) {
        PyObject *trial = PySequence_Fast_GET_ITEM(trial_seq, t);
        if (!PyTuple_Check(trial) || PyTuple_GET_SIZE(trial) != 3) {
            PyErr_SetString(PyExc_TypeError, "a trial must be a (demand, cap, redone) tuple");
            goto done;
        }
        if (parse_demand(PyTuple_GET_ITEM(trial, 0), t, n_base, 0, &pairs) < 0) goto done;
        double c = PyFloat_AsDouble(PyTuple_GET_ITEM(trial, 1));
        if (c == -1.0 && PyErr_Occurred()) goto done;
        cap[t * apps + n_base] = c;
        PyObject *redone = PyTuple_GET_ITEM(trial, 2);
        if (!PyDict_Check(redone)) {
            PyErr_SetString(PyExc_TypeError, "a trial's redone apps must be a dict");
            goto done;
        }
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(redone, &pos, &key, &value)) {
            Py_ssize_t k = PyLong_AsSsize_t(key);
            if (k == -1 && PyErr_Occurred()) goto done;
            if (k < 0 || k >= n_base) {
                PyErr_SetString(PyExc_IndexError, "a redone app index is not a base app");
                goto done;
            }
            if (parse_demand(value, t, k, 1, &pairs) < 0) goto done;
        }
    }
    got = malloc((size_t)(n_trials ? n_trials : 1) * (size_t)apps * sizeof(double));
    if (got == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (fill_many_core(&pairs, n_trials, apps, cap, got) < 0) goto done;
    result = rate_lists(got, n_trials, apps);
done:
    Py_XDECREF(base_seq);
    Py_XDECREF(caps_seq);
    Py_XDECREF(trial_seq);
    free(pairs.items);
    free(cap);
    free(got);
    return result;
}

/* fill(demands, caps): water_fill of synergy.planning.throughput, step for step: the
 * resources' summed demand is kept as apps freeze (a resource nobody rises on any more
 * drops out exactly), in the order the Python version adds and subtracts. */
/* fill's steps over n apps' pairs (app i's are starts[i]..starts[i+1]) into got; 0, or -1
 * with an exception set. */
static int fill_core(const Pairs *pairs, const Py_ssize_t *starts, Py_ssize_t n, const double *caps, double *got) {
    int status = -1;
    Py_ssize_t *columns = NULL, *users = NULL, *active = NULL, *still = NULL;
    long long *numbers = NULL;
    double *use = NULL, *residual = NULL;
    unsigned char *in_use = NULL, *saturated = NULL;
    for (Py_ssize_t i = 0; i < n; i++) got[i] = 0.0;
    active = malloc((size_t)(n ? n : 1) * sizeof(Py_ssize_t));
    still = malloc((size_t)(n ? n : 1) * sizeof(Py_ssize_t));
    if (active == NULL || still == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    numbers = malloc((size_t)(pairs->n ? pairs->n : 1) * sizeof(long long));
    columns = malloc((size_t)(pairs->n ? pairs->n : 1) * sizeof(Py_ssize_t));
    if (numbers == NULL || columns == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t k = 0; k < pairs->n; k++) numbers[k] = pairs->items[k].number;
    qsort(numbers, (size_t)pairs->n, sizeof(long long), compare_numbers);
    Py_ssize_t resources = 0;
    for (Py_ssize_t k = 0; k < pairs->n; k++)
        if (resources == 0 || numbers[resources - 1] != numbers[k]) numbers[resources++] = numbers[k];
    for (Py_ssize_t k = 0; k < pairs->n; k++) columns[k] = column_of(numbers, resources, pairs->items[k].number);
    Py_ssize_t width = resources ? resources : 1;
    use = calloc((size_t)width, sizeof(double));
    residual = malloc((size_t)width * sizeof(double));
    users = calloc((size_t)width, sizeof(Py_ssize_t));
    in_use = calloc((size_t)width, 1);
    saturated = calloc((size_t)width, 1);
    if (use == NULL || residual == NULL || users == NULL || in_use == NULL || saturated == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    Py_ssize_t n_active = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (caps[i] > 0) active[n_active++] = i;
    /* The Python version walks its dict of resources in the order they were first used;
     * the walk only takes a minimum and marks saturation, which no order changes. */
    for (Py_ssize_t x = 0; x < n_active; x++) {
        Py_ssize_t i = active[x];
        for (Py_ssize_t k = starts[i]; k < starts[i + 1]; k++) {
            double s = pairs->items[k].seconds;
            if (s > 0) {
                Py_ssize_t r = columns[k];
                use[r] = in_use[r] ? use[r] + s : 0.0 + s;
                users[r] += 1;
                residual[r] = 1.0;
                in_use[r] = 1;
            }
        }
    }
    double level = 0.0;
    while (n_active) {
        double lowest = INFINITY;
        int first = 1;
        for (Py_ssize_t x = 0; x < n_active; x++) {
            double c = caps[active[x]];
            /* Python's min(): the first, then any smaller one. */
            if (first || c < lowest) lowest = c;
            first = 0;
        }
        double step = lowest - level;
        for (Py_ssize_t r = 0; r < width; r++) {
            if (!in_use[r]) continue;
            double t = residual[r] / use[r];
            if (t < step) step = t;
        }
        if (isinf(step)) {
            PyErr_SetString(PyExc_ValueError, "an app with no work must have a finite rate cap");
            goto out;
        }
        level += step;
        int any_saturated = 0;
        for (Py_ssize_t r = 0; r < width; r++) {
            saturated[r] = 0;
            if (!in_use[r]) continue;
            double left = residual[r] - step * use[r];
            residual[r] = left;
            if (left <= FILL_EPS) saturated[r] = 1, any_saturated = 1;
        }
        Py_ssize_t n_still = 0;
        for (Py_ssize_t x = 0; x < n_active; x++) {
            Py_ssize_t i = active[x];
            double c = caps[i];
            int frozen = c - level <= FILL_EPS * (1.0 > c ? 1.0 : c);
            if (!frozen && any_saturated) {
                for (Py_ssize_t k = starts[i]; k < starts[i + 1] && !frozen; k++)
                    frozen = pairs->items[k].seconds > 0 && saturated[columns[k]];
            }
            if (frozen) {
                got[i] = level;
                for (Py_ssize_t k = starts[i]; k < starts[i + 1]; k++) {
                    double s = pairs->items[k].seconds;
                    if (s > 0) {
                        Py_ssize_t r = columns[k];
                        users[r] -= 1;
                        if (users[r])
                            use[r] -= s;
                        else
                            in_use[r] = 0;
                    }
                }
            } else {
                still[n_still++] = i;
            }
        }
        if (n_still == n_active) {
            PyErr_SetString(PyExc_AssertionError, "water-filling made no progress");
            goto out;
        }
        memcpy(active, still, (size_t)n_still * sizeof(Py_ssize_t));
        n_active = n_still;
    }
    status = 0;
out:
    free(columns);
    free(users);
    free(active);
    free(still);
    free(numbers);
    free(use);
    free(residual);
    free(in_use);
    free(saturated);
    return status;
}

static PyObject *fill(PyObject *self, PyObject *args) {
    PyObject *demands, *caps_obj;
    if (!PyArg_ParseTuple(args, "OO", &demands, &caps_obj)) return NULL;
    PyObject *demand_seq = NULL, *caps_seq = NULL, *result = NULL;
    Pairs pairs = {NULL, 0, 0};
    Py_ssize_t *starts = NULL;
    double *caps = NULL, *got = NULL;

    demand_seq = PySequence_Fast(demands, "demands must be a sequence of demands");
    if (demand_seq == NULL) goto done;
    caps_seq = PySequence_Fast(caps_obj, "caps must be a sequence of floats");
    if (caps_seq == NULL) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(demand_seq);
    if (PySequence_Fast_GET_SIZE(caps_seq) != n) {
        PyErr_SetString(PyExc_ValueError, "demands and caps differ in length");
        goto done;
    }
    starts = malloc((size_t)(n + 1) * sizeof(Py_ssize_t));
    caps = malloc((size_t)(n ? n : 1) * sizeof(double));
    got = calloc((size_t)(n ? n : 1), sizeof(double));
    if (starts == NULL || caps == NULL || got == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        starts[i] = pairs.n;
        if (parse_demand(PySequence_Fast_GET_ITEM(demand_seq, i), 0, i, 0, &pairs) < 0) goto done;
        caps[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(caps_seq, i));
        if (caps[i] == -1.0 && PyErr_Occurred()) goto done;
    }
    starts[n] = pairs.n;
    if (fill_core(&pairs, starts, n, caps, got) < 0) goto done;
    result = PyList_New(n);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyFloat_FromDouble(got[i]);
        if (value == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, value);
    }
done:
    Py_XDECREF(demand_seq);
    Py_XDECREF(caps_seq);
    free(pairs.items);
    free(starts);
    free(caps);
    free(got);
    return result;
}

/* --- rates_many: batch.rates_with whole -------------------------------------------------
 *
 * A frame cost arrives packed (synergy.planning.batch._packed): a header, its work rows and
 * its shared-medium demands, native 8-byte fields. Devices are named by the number of their
 * serial resource; boards maps each to (weight, bias, layers, data bytes, flash bytes, CPU
 * active power). Every figure is made as throughput.numbered_demands and rates_with make it:
 * the same sums in the same order. */

typedef struct {
    long long rows, shared;
    double latency, energy, cap;
} PackedHeader;

typedef struct {
    long long device;
    long long names[4]; /* accelerator, CPU, radio, serial */
    long long partition, weight, bias, layers, peak, frame;
    double a, c, r, reload;
} PackedRow;

typedef struct {
    long long number;
    double seconds;
} PackedShared;

typedef struct {
    PackedHeader head;
    const char *rows; /* PackedRow records (copied out one at a time: no alignment assumed) */
    const char *shared;
    Py_ssize_t first_dev; /* where its rows' device indices start in the call's table */
} Cost;

typedef struct {
    long long key;
    long long limits[5]; /* weight, bias, layers, data, flash */
    double cpu_power;
    long long agg[6]; /* the base apps': partitions, weight, bias, layers, widest layer, largest buffer */
    unsigned char in_base, over, reload, overlap;
} Device;

typedef struct {
    Device *items;
    Py_ssize_t n, cap;
} Devices;

static Py_ssize_t device_index(Devices *devs, long long key, PyObject *boards) {
    for (Py_ssize_t k = 0; k < devs->n; k++)
        if (devs->items[k].key == key) return k;
    Device *items = with_room(devs->items, &devs->cap, devs->n, sizeof(Device), 16);
    if (items == NULL) return -1;
    devs->items = items;
    Device *d = &devs->items[devs->n];
    memset(d, 0, sizeof(Device));
    d->key = key;
    PyObject *number = PyLong_FromLongLong(key);
    if (number == NULL) return -1;
    PyObject *board = PyDict_GetItemWithError(boards, number);
    Py_DECREF(number);
    if (board == NULL) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_KeyError, "no board for device number %lld", key);
        return -1;
    }
    if (!PyTuple_Check(board) || PyTuple_GET_SIZE(board) != 6) {
        PyErr_SetString(PyExc_TypeError, "a board must be a (weight, bias, layers, data, flash, cpu power) tuple");
        return -1;
    }
    for (int k = 0; k < 5; k++) {
        d->limits[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(board, k));
        if (d->limits[k] == -1 && PyErr_Occurred()) return -1;
    }
    d->cpu_power = PyFloat_AsDouble(PyTuple_GET_ITEM(board, 5));
    if (d->cpu_power == -1.0 && PyErr_Occurred()) return -1;
    return devs->n++;
}

static PackedRow row_at(const Cost *c, Py_ssize_t k) {
    PackedRow row;
    memcpy(&row, c->rows + (size_t)k * sizeof(PackedRow), sizeof(PackedRow));
    return row;
}

static int parse_cost(PyObject *obj, Cost *out) {
    if (!PyBytes_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "a packed frame cost must be bytes");
        return -1;
    }
    const char *data = PyBytes_AS_STRING(obj);
    Py_ssize_t size = PyBytes_GET_SIZE(obj);
    if (size < (Py_ssize_t)sizeof(PackedHeader)) goto bad;
    memcpy(&out->head, data, sizeof(PackedHeader));
    if (out->head.rows < 0 || out->head.shared < 0 || out->head.rows > size || out->head.shared > size) goto bad;
    if ((Py_ssize_t)(sizeof(PackedHeader) + (size_t)out->head.rows * sizeof(PackedRow) +
                     (size_t)out->head.shared * sizeof(PackedShared)) != size)
        goto bad;
    out->rows = data + sizeof(PackedHeader);
    out->shared = out->rows + (size_t)out->head.rows * sizeof(PackedRow);
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "a packed frame cost has the wrong size for its counts");
    return -1;
}

/* (flash overflows, weights reload, work overlaps) of aggregate a on device d: device_flags. */
static void judge(const long long *a, const Device *d, int allow_parallel, unsigned char *over, unsigned char *reload,
                  unsigned char *overlap) {
    int shared = a[0] >= 2;
    *over = shared && a[1] + a[2] > d->limits[4];
    *reload = shared && (a[1] > d->limits[0] || a[2] > d->limits[1] || a[3] > d->limits[2]);
    *overlap = allow_parallel && a[4] + a[5] <= d->limits[3];
}

static void aggregate_row(long long *a, const PackedRow *row) {
    if (!row->partition) return;
    a[0] += 1;
    a[1] += row->weight;
    a[2] += row->bias;
    a[3] += row->layers;
    if (row->peak > a[4]) a[4] = row->peak;
    if (row->frame > a[5]) a[5] = row->frame;
}

/* Accumulates (number, seconds) into the first entry of that number, else a new one. */
static void accumulate(PackedShared *entries, Py_ssize_t *n, long long number, double seconds) {
    for (Py_ssize_t k = 0; k < *n; k++) {
        if (entries[k].number == number) {
            entries[k].seconds = entries[k].seconds + seconds;
            return;
        }
    }
    entries[*n].number = number;
    entries[*n].seconds = 0.0 + seconds;
    (*n)++;
}

/* numbered_demands of a cost given each device's (reload, overlap) state, as pairs of
 * (trial, app) into out (the first clears the app's row when clear_row). */
static int demands_of(const Cost *c, const Py_ssize_t *dev_of_row, const Devices *devs, const unsigned char *reload,
                      const unsigned char *overlap, Py_ssize_t trial, Py_ssize_t app, int clear_row, Pairs *out,
                      double *latency, double *energy) {
    Py_ssize_t rows = (Py_ssize_t)c->head.rows, shared = (Py_ssize_t)c->head.shared;
    PackedShared *entries = malloc((size_t)(4 * rows + shared + 1) * sizeof(PackedShared));
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int any_reload = 0;
    for (Py_ssize_t k = 0; k < rows; k++) {
        PackedRow row = row_at(c, k);
        if (row.partition && reload[dev_of_row[c->first_dev + k]]) any_reload = 1;
    }
    double lat = c->head.latency, en = c->head.energy;
    Py_ssize_t n = 0;
    for (Py_ssize_t k = 0; k < rows; k++) {
        PackedRow row = row_at(c, k);
        Py_ssize_t d = dev_of_row[c->first_dev + k];
        double extra = 0.0;
        if (any_reload && row.partition && reload[d]) {
            extra = row.reload;
            if (extra != 0.0) {
                /* Weights are written by the CPU while the accelerator cannot run. */
                lat += extra;
                en += extra * devs->items[d].cpu_power;
            }
        }
        if (overlap[d]) {
            double seconds[3] = {row.a + extra, row.c + extra, row.r};
            for (int kind = 0; kind < 3; kind++)
                if (seconds[kind] > 0) accumulate(entries, &n, row.names[kind], seconds[kind]);
        } else {
            double seconds = row.a + row.c + row.r + extra;
            if (seconds > 0) accumulate(entries, &n, row.names[3], seconds);
        }
    }
    for (Py_ssize_t k = 0; k < shared; k++) {
        PackedShared item;
        memcpy(&item, c->shared + (size_t)k * sizeof(PackedShared), sizeof(PackedShared));
        /* (Shared media's names are their own: a merge never meets a device's resource.) */
        entries[n++] = item;
    }
    int status = 0;
    if (n == 0 && clear_row) {
        Pair marker = {trial, app, -1, 0.0, 1};
        status = pairs_push(out, marker);
    }
    for (Py_ssize_t k = 0; k < n && status == 0; k++) {
        Pair item = {trial, app, entries[k].number, entries[k].seconds, clear_row && k == 0};
        status = pairs_push(out, item);
    }
    free(entries);
    *latency = lat;
    *energy = en;
    return status;
}

static PyObject *rates_many(PyObject *self, PyObject *args) {
    PyObject *base_obj, *trials_obj, *boards;
    int allow_parallel;
    Py_ssize_t min_batch;
    if (!PyArg_ParseTuple(args, "OOO!pn", &base_obj, &trials_obj, &PyDict_Type, &boards, &allow_parallel, &min_batch))
        return NULL;
    PyObject *base_seq = NULL, *trial_seq = NULL, *result = NULL;
    Cost *costs = NULL;
    Devices devs = {NULL, 0, 0};
    Py_ssize_t *dev_of_row = NULL, *range = NULL, *batched = NULL, *starts = NULL;
    unsigned char *reload = NULL, *overlap = NULL, *redone = NULL, *over = NULL, *uses = NULL;
    double *latencies = NULL, *energies = NULL, *caps = NULL, *rates = NULL;
    long long *trial_agg = NULL;
    Pairs base_pairs = {NULL, 0, 0}, trial_pairs = {NULL, 0, 0}, work = {NULL, 0, 0};
    Py_ssize_t *base_start = NULL;

    base_seq = PySequence_Fast(base_obj, "base must be a sequence of packed frame costs");
    if (base_seq == NULL) goto done;
    trial_seq = PySequence_Fast(trials_obj, "trials must be a sequence of packed frame costs");
    if (trial_seq == NULL) goto done;
    Py_ssize_t n_base = PySequence_Fast_GET_SIZE(base_seq), n_trials = PySequence_Fast_GET_SIZE(trial_seq);
    Py_ssize_t apps = n_base + 1, n_costs = n_base + n_trials;
    costs = malloc((size_t)(n_costs ? n_costs : 1) * sizeof(Cost));
    if (costs == NULL) goto nomem;
    Py_ssize_t total_rows = 0;
    for (Py_ssize_t i = 0; i < n_costs; i++) {
        PyObject *item = i < n_base ? PySequence_Fast_GET_ITEM(base_seq, i) : PySequence_Fast_GET_ITEM(trial_seq, i - n_base);
        if (parse_cost(item, &costs[i]) < 0) goto done;
        costs[i].first_dev = total_rows;
        total_rows += (Py_ssize_t)costs[i].head.rows;
    }
    dev_of_row = malloc((size_t)(total_rows ? total_rows : 1) * sizeof(Py_ssize_t));
    if (dev_of_row == NULL) goto nomem;
    for (Py_ssize_t i = 0; i < n_costs; i++) {
        for (Py_ssize_t k = 0; k < costs[i].head.rows; k++) {
            PackedRow row = row_at(&costs[i], k);
            Py_ssize_t d = device_index(&devs, row.device, boards);
            if (d < 0) goto done;
            dev_of_row[costs[i].first_dev + k] = d;
            if (i < n_base) {
                devs.items[d].in_base = 1;
                aggregate_row(devs.items[d].agg, &row);
            }
        }
    }
    Py_ssize_t n_dev = devs.n ? devs.n : 1;
    reload = calloc((size_t)n_dev, 1);
    overlap = calloc((size_t)n_dev, 1);
    uses = calloc((size_t)n_dev, 1);
    trial_agg = malloc((size_t)n_dev * 6 * sizeof(long long));
    if (reload == NULL || overlap == NULL || uses == NULL || trial_agg == NULL) goto nomem;
    int base_over = 0;
    for (Py_ssize_t d = 0; d < devs.n; d++) {
        Device *dv = &devs.items[d];
        if (!dv->in_base) continue;
        judge(dv->agg, dv, allow_parallel, &dv->over, &dv->reload, &dv->overlap);
        base_over |= dv->over;
        reload[d] = dv->reload;
        overlap[d] = dv->overlap;
    }
    result = PyList_New(n_trials);
    if (result == NULL) goto done;
    if (base_over) {  /* adding partitions never makes a flash fit */
        for (Py_ssize_t t = 0; t < n_trials; t++) PyList_SET_ITEM(result, t, Py_NewRef(Py_None));
        goto done;
    }
    latencies = malloc((size_t)(n_trials ? n_trials : 1) * (size_t)apps * sizeof(double));
    energies = malloc((size_t)(n_trials ? n_trials : 1) * (size_t)apps * sizeof(double));
    base_start = malloc((size_t)(n_base + 1) * sizeof(Py_ssize_t));
    range = malloc((size_t)(n_trials + 1) * sizeof(Py_ssize_t));
    redone = calloc((size_t)(n_trials ? n_trials : 1) * (size_t)apps, 1);
    over = calloc((size_t)(n_trials ? n_trials : 1), 1);
    if (latencies == NULL || energies == NULL || base_start == NULL || range == NULL || redone == NULL || over == NULL)
        goto nomem;
    /* The base apps' latencies, then their energies. */
    double *base_figures = malloc((size_t)(2 * apps) * sizeof(double));
    if (base_figures == NULL) goto nomem;
    for (Py_ssize_t i = 0; i < n_base; i++) {
        base_start[i] = base_pairs.n;
        if (demands_of(&costs[i], dev_of_row, &devs, reload, overlap, -1, i, 0, &base_pairs, &base_figures[i],
                       &base_figures[apps + i]) < 0) {
            free(base_figures);
            goto done;
        }
    }
    base_start[n_base] = base_pairs.n;
    Py_ssize_t n_batched = 0;
    for (Py_ssize_t t = 0; t < n_trials; t++) {
        const Cost *c = &costs[n_base + t];
        range[t] = trial_pairs.n;
        /* Its devices' figures beside the base's, and their state. */
        for (Py_ssize_t k = 0; k < c->head.rows; k++) {
            Py_ssize_t d = dev_of_row[c->first_dev + k];
            if (!uses[d]) {
                uses[d] = 1;
                memcpy(&trial_agg[6 * d], devs.items[d].agg, 6 * sizeof(long long));
            }
        }
        for (Py_ssize_t k = 0; k < c->head.rows; k++) {
            PackedRow row = row_at(c, k);
            aggregate_row(&trial_agg[6 * dev_of_row[c->first_dev + k]], &row);
        }
        int changed = 0, flash = 0;
        for (Py_ssize_t k = 0; k < c->head.rows; k++) {
            Py_ssize_t d = dev_of_row[c->first_dev + k];
            if (uses[d] != 1) continue;
            uses[d] = 2; /* judged */
            unsigned char o, r, p;
            judge(&trial_agg[6 * d], &devs.items[d], allow_parallel, &o, &r, &p);
            flash |= o;
            if (devs.items[d].in_base && (r != devs.items[d].reload || p != devs.items[d].overlap)) changed = 1;
            reload[d] = r;
            overlap[d] = p;
        }
        int status = 0;
        if (flash) {
            over[t] = 1;
        } else {
            double *lat = latencies + t * apps, *en = energies + t * apps;
            memcpy(lat, base_figures, (size_t)n_base * sizeof(double));
            memcpy(en, base_figures + apps, (size_t)n_base * sizeof(double));
            status = demands_of(c, dev_of_row, &devs, reload, overlap, n_batched, n_base, 0, &trial_pairs,
                                &lat[n_base], &en[n_base]);
            if (changed && status == 0) {
                /* The base apps on a device whose state the trial changes, redone with it. */
                for (Py_ssize_t i = 0; i < n_base && status == 0; i++) {
                    int hit = 0;
                    for (Py_ssize_t k = 0; k < costs[i].head.rows && !hit; k++) {
                        Py_ssize_t d = dev_of_row[costs[i].first_dev + k];
                        hit = uses[d] && (reload[d] != devs.items[d].reload || overlap[d] != devs.items[d].overlap);
                    }
                    if (!hit) continue;
                    redone[t * apps + i] = 1;
                    status = demands_of(&costs[i], dev_of_row, &devs, reload, overlap, n_batched, i, 1, &trial_pairs,
                                        &lat[i], &en[i]);
                }
            }
            n_batched++;
        }
        /* Back to the base's state. */
        for (Py_ssize_t k = 0; k < c->head.rows; k++) {
            Py_ssize_t d = dev_of_row[c->first_dev + k];
            uses[d] = 0;
            reload[d] = devs.items[d].in_base ? devs.items[d].reload : 0;
            overlap[d] = devs.items[d].in_base ? devs.items[d].overlap : 0;
        }
        if (status < 0) {
            free(base_figures);
            goto done;
        }
    }
    range[n_trials] = trial_pairs.n;
    free(base_figures);
    caps = malloc((size_t)(n_batched ? n_batched : 1) * (size_t)apps * sizeof(double));
    rates = malloc((size_t)(n_batched ? n_batched : 1) * (size_t)apps * sizeof(double));
    batched = malloc((size_t)(n_batched ? n_batched : 1) * sizeof(Py_ssize_t));
    if (caps == NULL || rates == NULL || batched == NULL) goto nomem;
    for (Py_ssize_t t = 0, j = 0; t < n_trials; t++) {
        if (over[t]) continue;
        batched[j] = t;
        for (Py_ssize_t i = 0; i < n_base; i++) caps[j * apps + i] = costs[i].head.cap;
        caps[j * apps + n_base] = costs[n_base + t].head.cap;
        j++;
    }
    if (n_batched < min_batch) {
        /* Few plans: the plain water-filling of each (throughput.water_fill's steps). */
        starts = malloc((size_t)(apps + 1) * sizeof(Py_ssize_t));
        if (starts == NULL) goto nomem;
        for (Py_ssize_t j = 0; j < n_batched; j++) {
            Py_ssize_t t = batched[j];
            work.n = 0;
            for (Py_ssize_t i = 0; i < apps; i++) {
                starts[i] = work.n;
                if (i < n_base && !redone[t * apps + i]) {
                    for (Py_ssize_t k = base_start[i]; k < base_start[i + 1]; k++)
                        if (pairs_push(&work, base_pairs.items[k]) < 0) goto done;
                } else {
                    for (Py_ssize_t k = range[t]; k < range[t + 1]; k++) {
                        const Pair *p = &trial_pairs.items[k];
                        if (p->app == i && p->number >= 0 && pairs_push(&work, *p) < 0) goto done;
                    }
                }
            }
            starts[apps] = work.n;
            if (fill_core(&work, starts, apps, caps + j * apps, rates + j * apps) < 0) goto done;
        }
    } else {
        work.n = 0;
        for (Py_ssize_t k = 0; k < base_pairs.n; k++)
            if (pairs_push(&work, base_pairs.items[k]) < 0) goto done;
        for (Py_ssize_t k = 0; k < trial_pairs.n; k++)
            if (pairs_push(&work, trial_pairs.items[k]) < 0) goto done;
        if (fill_many_core(&work, n_batched, apps, caps, rates) < 0) goto done;
    }
    for (Py_ssize_t t = 0, j = 0; t < n_trials; t++) {
        if (over[t]) {
            PyList_SET_ITEM(result, t, Py_NewRef(Py_None));
            continue;
        }
        PyObject *figures[3];
        const double *sources[3] = {rates + j * apps, latencies + t * apps, energies + t * apps};
        for (int f = 0; f < 3; f++) {
            figures[f] = PyList_New(apps);
            if (figures[f] == NULL) {
                for (int g = 0; g < f; g++) Py_DECREF(figures[g]);
                goto fail;
            }
            for (Py_ssize_t a = 0; a < apps; a++) {
                PyObject *value = PyFloat_FromDouble(sources[f][a]);
                if (value == NULL) {
                    for (int g = 0; g <= f; g++) Py_DECREF(figures[g]);
                    goto fail;
                }
                PyList_SET_ITEM(figures[f], a, value);
            }
        }
        PyObject *triple = PyTuple_Pack(3, figures[0], figures[1], figures[2]);
        for (int f = 0; f < 3; f++) Py_DECREF(figures[f]);
        if (triple == NULL) goto fail;
        PyList_SET_ITEM(result, t, triple);
        j++;
    }
    goto done;
nomem:
    PyErr_NoMemory();
fail:
    Py_CLEAR(result);
done:
    if (PyErr_Occurred()) Py_CLEAR(result);
    Py_XDECREF(base_seq);
    Py_XDECREF(trial_seq);
    free(costs);
    free(devs.items);
    free(dev_of_row);
    free(range);
    free(batched);
    free(starts);
    free(reload);
    free(overlap);
    free(redone);
    free(over);
    free(uses);
    free(latencies);
    free(energies);
    free(caps);
    free(rates);
    free(trial_agg);
    free(base_pairs.items);
    free(trial_pairs.items);
    free(work.items);
    free(base_start);
    return result;
}

/* A buffer of the given item size and kind ('f' float, 'i' signed int, 'b' bool), C-contiguous. */
static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, char kind, int writable, const char *what) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    const char *format = view->format ? view->format : "B";
    if (*format == '<' || *format == '=' || *format == '@') format++;
    int ok = view->itemsize == itemsize &&
             ((kind == 'f' && strcmp(format, "d") == 0) ||
              (kind == 'i' && (strcmp(format, "l") == 0 || strcmp(format, "q") == 0)) ||
              (kind == 'b' && strcmp(format, "?") == 0));
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous array of %s", what,
                     kind == 'f' ? "float64" : kind == 'i' ? "int64" : "bool");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* proxy_rates(work, total, dev, inv_free, serial, cap, out): the shortlist's ranking proxy,
 * synergy.planning.shortlist's numpy expression element by element (fmax and fmin skip
 * NaN, 0 x inf, as numpy's do): per template, min(cap, 1 / the busiest position's need). */
static PyObject *proxy_rates(PyObject *self, PyObject *args) {
    PyObject *objs[7];
    if (!PyArg_ParseTuple(args, "OOOOOOO", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4], &objs[5], &objs[6]))
        return NULL;
    static const char kinds[7] = {'f', 'f', 'i', 'f', 'b', 'f', 'f'};
    static const char *names[7] = {"work", "total", "dev", "inv_free", "serial", "cap", "out"};
    Py_buffer views[7];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 7; got++) {
        Py_ssize_t size = kinds[got] == 'b' ? 1 : 8;
        if (get_buffer(objs[got], &views[got], size, kinds[got], got == 6, names[got]) < 0) goto done;
    }
    Py_ssize_t templates = views[5].len / 8;
    Py_ssize_t positions = templates ? views[1].len / 8 / templates : 0;
    Py_ssize_t devices = views[4].len;
    if (views[6].len / 8 != templates || views[0].len / 8 != 3 * positions * templates ||
        views[1].len / 8 != positions * templates || views[2].len / 8 != positions * templates ||
        views[3].len / 8 != 3 * devices) {
        PyErr_SetString(PyExc_ValueError, "proxy_rates: the arrays' shapes do not match");
        goto done;
    }
    const double *work = views[0].buf, *total = views[1].buf, *inv_free = views[3].buf, *cap = views[5].buf;
    const long long *dev = views[2].buf;
    const unsigned char *serial = views[4].buf;
    double *out = views[6].buf;
    Py_ssize_t cells = positions * templates;
    for (Py_ssize_t k = 0; k < cells; k++) {
        if (dev[k] < 0 || dev[k] >= devices) {
            PyErr_SetString(PyExc_IndexError, "proxy_rates: a device index is out of range");
            goto done;
        }
    }
    for (Py_ssize_t t = 0; t < templates; t++) {
        double busiest = NAN;
        for (Py_ssize_t p = 0; p < positions; p++) {
            Py_ssize_t k = p * templates + t;
            const double *f = inv_free + 3 * dev[k];
            double need;
            if (serial[dev[k]]) {
                need = total[k] * f[0];
            } else {
                need = fmax(fmax(work[k] * f[0], work[cells + k] * f[1]), work[2 * cells + k] * f[2]);
            }
            busiest = p == 0 ? need : fmax(busiest, need);
        }
        out[t] = fmin(cap[t], 1.0 / busiest);
    }
    result = Py_NewRef(Py_None);
done:
    for (int k = 0; k < got; k++) PyBuffer_Release(&views[k]);
    return result;
}

/* Whether template a comes before b in the shortlist's proxy order: numpy's stable argsort
 * of -rate over the static order (NaN last), i.e. the higher rate, then the lower static rank. */
static int ranks_before(const double *rate, const long long *static_rank, long long a, long long b) {
    int nan_a = isnan(rate[a]), nan_b = isnan(rate[b]);
    if (nan_a != nan_b) return nan_b;
    if (!nan_a) {
        double ka = -rate[a], kb = -rate[b];
        if (ka < kb) return 1;
        if (ka > kb) return 0;
    }
    return static_rank[a] < static_rank[b];
}

/* select_ranked(rate, static_rank, bands, size, ladder, top, firsts) -> (n_top, n_firsts):
 * the shortlist's choice without sorting every template. top gets the `size` first templates
 * in proxy order (in that order); when templates remain and ladder > 0, firsts gets, per band
 * of own speed, the first remaining template in proxy order, by ascending template number
 * (Ranker.rank spreads its rungs over them). */
static PyObject *select_ranked(PyObject *self, PyObject *args) {
    PyObject *objs[7];
    Py_ssize_t size, ladder;
    if (!PyArg_ParseTuple(args, "OOOnnOO", &objs[0], &objs[1], &objs[2], &size, &ladder, &objs[5], &objs[6]))
        return NULL;
    static const char kinds[7] = {'f', 'i', 'i', 0, 0, 'i', 'i'};
    static const char *names[7] = {"rate", "static_rank", "bands", "", "", "top", "firsts"};
    Py_buffer views[7];
    int held[7] = {0};
    PyObject *result = NULL;
    long long *best = NULL;
    unsigned char *in_top = NULL;
    for (int k = 0; k < 7; k++) {
        if (!kinds[k]) continue;
        if (get_buffer(objs[k], &views[k], 8, kinds[k], k >= 5, names[k]) < 0) goto done;
        held[k] = 1;
    }
    Py_ssize_t n = views[0].len / 8;
    Py_ssize_t bands_count = views[6].len / 8;
    if (views[1].len / 8 != n || views[2].len / 8 != n || size < 0 || views[5].len / 8 < (size < n ? size : n)) {
        PyErr_SetString(PyExc_ValueError, "select_ranked: the arrays' lengths do not match");
        goto done;
    }
    const double *rate = views[0].buf;
    const long long *static_rank = views[1].buf, *bands = views[2].buf;
    long long *top = views[5].buf, *firsts = views[6].buf;
    for (Py_ssize_t t = 0; t < n; t++) {
        if (static_rank[t] < 0 || static_rank[t] >= n || bands[t] < 0 || bands[t] >= bands_count) {
            PyErr_SetString(PyExc_IndexError, "select_ranked: a rank or band is out of range");
            goto done;
        }
    }
    Py_ssize_t k = size < n ? size : n, got = 0;
    /* The k first by insertion into a sorted buffer (k is a shortlist: tens). */
    for (long long t = 0; t < n; t++) {
        if (got == k && (k == 0 || !ranks_before(rate, static_rank, t, top[k - 1]))) continue;
        Py_ssize_t at = got < k ? got : k - 1;
        while (at > 0 && ranks_before(rate, static_rank, t, top[at - 1])) {
            top[at] = top[at - 1];
            at--;
        }
        top[at] = t;
        if (got < k) got++;
    }
    Py_ssize_t n_firsts = 0;
    if (size < n && ladder > 0) {
        best = malloc((size_t)(bands_count ? bands_count : 1) * sizeof(long long));
        in_top = calloc((size_t)(n ? n : 1), 1);
        if (best == NULL || in_top == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t b = 0; b < bands_count; b++) best[b] = -1;
        for (Py_ssize_t j = 0; j < got; j++) in_top[top[j]] = 1;
        for (long long t = 0; t < n; t++) {
            if (in_top[t]) continue;
            long long b = bands[t];
            if (best[b] < 0 || ranks_before(rate, static_rank, t, best[b])) best[b] = t;
        }
        for (Py_ssize_t b = 0; b < bands_count; b++)
            if (best[b] >= 0) firsts[n_firsts++] = best[b];
        qsort(firsts, (size_t)n_firsts, sizeof(long long), compare_numbers);
    }
    result = Py_BuildValue("(nn)", got, n_firsts);
done:
    for (int j = 0; j < 7; j++)
        if (held[j]) PyBuffer_Release(&views[j]);
    free(best);
    free(in_top);
    return result;
}

static PyMethodDef methods[] = {
    {"rates_many", rates_many, METH_VARARGS,
     "rates_many(base, trials, boards, allow_parallel, min_batch) -> batch.rates_with's figures, from packed costs"},
    {"select_ranked", select_ranked, METH_VARARGS,
     "select_ranked(rate, static_rank, bands, size, ladder, top, firsts) -> (n_top, n_firsts)"},
    {"proxy_rates", proxy_rates, METH_VARARGS,
     "proxy_rates(work, total, dev, inv_free, serial, cap, out): the shortlist's ranking proxy into out"},
    {"fill", fill, METH_VARARGS, "fill(demands, caps) -> the max-min fair rates (throughput.water_fill's)"},
    {"fill_many", fill_many, METH_VARARGS,
     "fill_many(base, base_caps, trials) -> per trial, the max-min fair rates of the base apps and the trial's app"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "synergy.planning._fill",
    "The planner's water-filling and ranking proxy in C (see synergy/planning/batch.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fill(void) { return PyModule_Create(&module); }
