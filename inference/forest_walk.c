/* The tree walk behind the sklearn engine's forests: inference/compiled_forest.py packs a fitted forest's trees
 * into one array of nodes and calls these functions through ctypes, which releases the GIL for the call.
 *
 * Why not scikit-learn's own walk: its nodes are 64-byte structs with statistics the walk never reads, and it
 * follows one row to its leaf before starting the next, so each step waits for the load the step before asked
 * for. Here a node is 16 bytes, a node's two children sit side by side (the step to take is computed, not
 * branched on), and a group of rows descends together, so their loads overlap.
 */
#include <stdint.h>

typedef struct {
    int32_t feature;
    float threshold; /* the split's threshold rounded down to float32: x <= it exactly when x <= sklearn's double */
    int32_t child;   /* the left child's index; the right child is the next node. A leaf: its own index - 1 */
    int32_t unused;  /* pads the node to 16 bytes, four to a cache line */
} node_t;

#define GROUP 32

/* The leaves that rows[0..group) (row-major float32) reach from root. A leaf's threshold is NaN: no comparison
 * with it holds, so the step from a leaf is child + 1, itself, and a row that has arrived stays. */
static void leaves(const node_t *nodes, int64_t root, const float *rows, int group, int64_t n_features,
                   int64_t *at)
{
    for (int k = 0; k < group; k++)
        at[k] = root;
    for (int moved = 1; moved;) {
        moved = 0;
        for (int k = 0; k < group; k++) {
            const node_t *node = nodes + at[k];
            const int64_t next = node->child + !(rows[k * n_features + node->feature] <= node->threshold);
            moved |= next != at[k];
            at[k] = next;
        }
    }
}

/* Adds to sum[i] the value of the leaf that row i of X (n_rows x n_features) reaches in each tree, in the order of
 * the trees: scikit-learn's sum, to the bit. */
void forest_walk(const node_t *nodes, const double *values, const int64_t *roots, int64_t n_trees,
                 const float *X, int64_t n_rows, int64_t n_features, double *sum)
{
    int64_t at[GROUP];
    for (int64_t tree = 0; tree < n_trees; tree++) {
        for (int64_t start = 0; start < n_rows; start += GROUP) {
            const int group = n_rows - start < GROUP ? (int)(n_rows - start) : GROUP;
            leaves(nodes, roots[tree], X + start * n_features, group, n_features, at);
            for (int k = 0; k < group; k++)
                sum[start + k] += values[at[k]];
        }
    }
}

/* As forest_walk, and also the sum and the sum of squares of each tree's deviation from the first tree's value,
 * as inference/forest.py's tree_moments takes them (for the spread of the trees' predictions). */
void forest_walk_moments(const node_t *nodes, const double *values, const int64_t *roots, int64_t n_trees,
                         const float *X, int64_t n_rows, int64_t n_features, double *sum, double *reference,
                         double *shifted, double *shifted_sq)
{
    int64_t at[GROUP];
    for (int64_t tree = 0; tree < n_trees; tree++) {
        for (int64_t start = 0; start < n_rows; start += GROUP) {
            const int group = n_rows - start < GROUP ? (int)(n_rows - start) : GROUP;
            leaves(nodes, roots[tree], X + start * n_features, group, n_features, at);
            for (int k = 0; k < group; k++) {
                const int64_t i = start + k;
                const double value = values[at[k]];
                sum[i] += value;
                if (tree == 0) {
                    reference[i] = value;
                } else {
                    const double deviation = value - reference[i];
                    shifted[i] += deviation;
                    shifted_sq[i] += deviation * deviation;
                }
            }
        }
    }
}
