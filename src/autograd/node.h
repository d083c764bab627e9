// The recorded graph: nodes, edges and saved tensors.
//
// A Node is the backward of one op call. It records what the planners and the analysis read — the
// op name, its cost, its outputs' shapes, the tensors it saved (and their bytes) — and the edges to
// the nodes that produced its inputs (or to AccumulateGrad nodes for leaves). An input that does
// not require grad has an invalid edge: its gradient is never computed.
//
// Note [Iterative graph destruction]: a node owns the nodes its edges point to, so freeing the root
// of a long chain would free the chain recursively, one stack frame per node. The destructor
// instead hands the children it solely owns to a thread-local work list that the outermost
// destructor drains, so any graph is freed in constant stack depth.
//
// Note [Saved tensors]: a node saves detached aliases (same storage, no history), never the tensors
// themselves, so a node that saves its own output makes no reference cycle. Each saved tensor
// remembers the storage's version; unpacking after an in-place write is an error, as is unpacking
// after release (backward twice without retain_graph). While saved-tensor hooks are active (see
// autograd/saved_hooks.h) a saved tensor may hold a hook's packed value instead of the tensor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

class Node;

struct Edge {
  std::shared_ptr<Node> node;
  uint32_t input_nr = 0;  // which output of `node` (= which gradient slot of it) this edge feeds
  bool valid() const { return node != nullptr; }
};

struct OutputInfo {
  Shape shape;
  DType dtype = DType::f32;
  Device device;
};

class SavedTensor {
 public:
  SavedTensor() = default;
  // Saves `t` for `owner`, through the innermost saved-tensor hooks if any are active.
  SavedTensor(const Tensor& t, const Node& owner);
  // The saved value; throws Error if released or modified in place since it was saved.
  Tensor unpack(const Node& owner) const;
  void release() {
    data_ = Tensor();
    packed_.reset();
  }
  bool released() const { return was_defined_ && !data_.defined() && !packed_; }
  // Payload bytes held (0 once released, and 0 when a hook holds the value).
  int64_t nbytes() const { return data_.defined() ? data_.nbytes() : 0; }
  // The tensor held, undefined when a hook holds the value.
  const Tensor& peek() const { return data_; }
  // Whether a pack hook holds the value.
  bool is_packed() const { return packed_ != nullptr; }

 private:
  struct Packed;  // defined in node.cpp; null on the no-hooks path
  Tensor data_;
  uint64_t version_ = 0;
  bool was_defined_ = false;
  std::shared_ptr<Packed> packed_;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  explicit Node(const char* name);
  virtual ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // grads[i] is the gradient with respect to output i, undefined if none arrived (read it as zero).
  // Returns one gradient per next edge; an entry may be undefined (no gradient, or the edge is
  // invalid). Runs with grad mode off.
  virtual std::vector<Tensor> apply(std::vector<Tensor>& grads) = 0;

  const char* name() const { return name_; }
  uint64_t sequence_nr() const { return seq_; }
  std::vector<Edge>& next_edges() { return next_edges_; }
  const std::vector<Edge>& next_edges() const { return next_edges_; }
  // Whether input i's gradient is wanted (its edge is valid).
  bool needs_input_grad(size_t i) const { return i < next_edges_.size() && next_edges_[i].valid(); }
  std::vector<OutputInfo>& outputs() { return outputs_; }
  const std::vector<OutputInfo>& outputs() const { return outputs_; }
  size_t num_outputs() const { return outputs_.size(); }

  // Saves a tensor for the backward and returns its index (an undefined tensor is allowed).
  size_t save(const Tensor& t);
  Tensor saved(size_t i) const { return saved_.at(i).unpack(*this); }
  const std::vector<SavedTensor>& saved_tensors() const { return saved_; }
  int64_t saved_bytes() const;
  // Drops the saved tensors; the node cannot run again afterwards.
  virtual void release_saved();
  bool released() const { return released_; }
  // Whether the running backward drops the saved tensors once apply returns (no retain_graph): a
  // saved tensor that nothing else holds is then the node's to overwrite in its last read. Set by
  // the engine before apply; false for any other caller.
  bool releases_saved_after_apply() const { return releases_saved_after_apply_; }
  void set_releases_saved_after_apply(bool v) { releases_saved_after_apply_ = v; }

  Cost cost;  // of the forward op call this node records

  // Eager gradient buffers (EagerGradScope): zero buffers allocated at forward time, one per
  // output.
  std::vector<Tensor>& preallocated_grads() { return preallocated_; }

  // The node's index in the running backward's tables (-1 outside a backward); engine use only.
  int64_t engine_slot = -1;

  // Adding into a waiting gradient. A node whose backward can add its gradient for input i to a
  // gradient already waiting for that input, in the pass that writes its own (layer norm's gx_add),
  // returns true here. Before apply, the engine then moves the waiting gradient of input i (when
  // one has arrived and the engine does not own it, see engine.cpp) into waiting_grad(i), and apply
  // returns the sum for input i, taking the tensor out of waiting_grad(i). A tensor that apply
  // leaves there is put back and summed as usual, so a node may decline case by case.
  virtual bool adds_into_input_grad(size_t /*i*/) const { return false; }
  Tensor& waiting_grad(size_t i) {
    if (waiting_.size() <= i) waiting_.resize(i + 1);
    return waiting_[i];
  }
  void clear_waiting_grads() { waiting_.clear(); }

  // Whether this node's backward sums the gradient of its output `output_nr` over every dimension
  // but the last (a bias gradient) and takes those sums from the gradient when the node that made
  // it attached them (autograd/grad_col_sums.h). A node that can make them in passing asks this of
  // the node its input's gradient goes to.
  virtual bool takes_output_col_sums(size_t /*output_nr*/) const { return false; }

 protected:
  bool released_ = false;

 private:
  const char* name_;
  uint64_t seq_;
  std::vector<Edge> next_edges_;
  std::vector<OutputInfo> outputs_;
  std::vector<SavedTensor> saved_;
  std::vector<Tensor> preallocated_;
  std::vector<Tensor> waiting_;
  bool releases_saved_after_apply_ = false;
};

// The edge that a gradient for `t` should flow along: its grad_fn, or its leaf accumulator if it is
// a leaf that requires grad, or an invalid edge.
Edge gradient_edge(const Tensor& t);

// True when grad mode is on and any defined input requires grad.
bool any_requires_grad(std::initializer_list<Tensor> inputs);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Connects a freshly computed op to the graph: edges from `inputs`, history on `outputs`, output
// shapes recorded, and eager gradient buffers if that mode is on.
void set_history(const std::shared_ptr<Node>& node, const std::vector<Tensor>& inputs,
                 const std::vector<Tensor>& outputs);

}  // namespace tilegrad
