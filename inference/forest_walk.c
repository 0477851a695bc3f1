/* The tree walk behind the sklearn engine's forests: inference/compiled_forest.py packs a fitted forest's trees
 * into one array of nodes and calls these functions through ctypes.
 *
 * Why not scikit-learn's own walk: its nodes are 64-byte structs with statistics the walk never reads, and it
 * follows one row to its leaf before starting the next, so each step waits for the load the step before asked
 * for. Here a node is 16 bytes, a node's two children sit side by side (the step to take is computed, not
 * branched on), and GROUP walks descend together, so their loads overlap: GROUP rows through one tree for a
 * batch; for fewer rows, one row through GROUP trees (a lone row's walk through a forest that other work has
 * pushed out of the caches is otherwise a chain of cache misses, one per level and tree).
 */
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int32_t feature;
    float threshold; /* the split's threshold rounded down to float32: x <= it exactly when x <= sklearn's double */
    int32_t child;   /* the left child's index; the right child is the next node. A leaf: its own index - 1 */
    int32_t unused;  /* pads the node to 16 bytes, four to a cache line */
} node_t;

#define GROUP 32

/* Walks each lane k from node at[k] down to its leaf with the features in rows[k]. A leaf's threshold is NaN: no
 * comparison with it holds, so the step from a leaf is child + 1, itself, and a lane that has arrived stays. */
static void descend(const node_t *nodes, int64_t *at, const float *const *rows, int lanes)
{
    for (int moved = 1; moved;) {
        moved = 0;
        for (int k = 0; k < lanes; k++) {
            const node_t *node = nodes + at[k];
            const int64_t next = node->child + !(rows[k][node->feature] <= node->threshold);
            moved |= next != at[k];
            at[k] = next;
        }
    }
}

/* Tree `tree`'s value for row i: added to sum[i] and, if asked (reference not NULL), to the deviations from the
 * first tree's value, as inference/forest.py's tree_moments takes them. Called in the order of the trees. */
static void add(int64_t tree, int64_t i, double value, double *sum, double *reference, double *shifted,
                double *shifted_sq)
{
    sum[i] += value;
    if (reference == NULL)
        return;
    if (tree == 0) {
        reference[i] = value;
    } else {
        const double deviation = value - reference[i];
        shifted[i] += deviation;
        shifted_sq[i] += deviation * deviation;
    }
}

static void walk(const node_t *nodes, const double *values, const int64_t *roots, int64_t n_trees, const float *X,
                 int64_t n_rows, int64_t n_features, double *sum, double *reference, double *shifted,
                 double *shifted_sq)
{
    int64_t at[GROUP];
    const float *rows[GROUP];
    if (n_rows < GROUP) {
        for (int64_t i = 0; i < n_rows; i++) {
            for (int64_t first = 0; first < n_trees; first += GROUP) {
                const int lanes = n_trees - first < GROUP ? (int)(n_trees - first) : GROUP;
                for (int k = 0; k < lanes; k++) {
                    at[k] = roots[first + k];
                    rows[k] = X + i * n_features;
                }
                descend(nodes, at, rows, lanes);
                for (int k = 0; k < lanes; k++)
                    add(first + k, i, values[at[k]], sum, reference, shifted, shifted_sq);
            }
        }
        return;
    }
    for (int64_t tree = 0; tree < n_trees; tree++) {
        for (int64_t start = 0; start < n_rows; start += GROUP) {
            const int lanes = n_rows - start < GROUP ? (int)(n_rows - start) : GROUP;
            for (int k = 0; k < lanes; k++) {
                at[k] = roots[tree];
                rows[k] = X + (start + k) * n_features;
            }
            descend(nodes, at, rows, lanes);
            for (int k = 0; k < lanes; k++)
                add(tree, start + k, values[at[k]], sum, reference, shifted, shifted_sq);
        }
    }
}

/* Adds to sum[i] the value of the leaf that row i of X (n_rows x n_features, row-major float32) reaches in each
 * tree, in the order of the trees: scikit-learn's sum, to the bit. */
void forest_walk(const node_t *nodes, const double *values, const int64_t *roots, int64_t n_trees,
                 const float *X, int64_t n_rows, int64_t n_features, double *sum)
{
    walk(nodes, values, roots, n_trees, X, n_rows, n_features, sum, NULL, NULL, NULL);
}

/* As forest_walk, and also the sum and the sum of squares of each tree's deviation from the first tree's value
 * (for the spread of the trees' predictions); reference holds the first tree's values. */
void forest_walk_moments(const node_t *nodes, const double *values, const int64_t *roots, int64_t n_trees,
                         const float *X, int64_t n_rows, int64_t n_features, double *sum, double *reference,
                         double *shifted, double *shifted_sq)
{
    walk(nodes, values, roots, n_trees, X, n_rows, n_features, sum, reference, shifted, shifted_sq);
}
