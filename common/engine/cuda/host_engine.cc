// The CUDA backend run by the host executor (see host_engine.h).
#include "common/engine/cuda/host_engine.h"

#include "common/engine/cuda/forward_pass.h"
#include "common/engine/cuda/host_exec.h"
#include "common/engine/cuda/model_image.h"
#include "common/engine/kernels.h"

namespace boa::engine::cuda {

namespace {

class HostEngine final : public Engine {
 public:
  explicit HostEngine(ModelImage image)
      : Engine(image.config()), memory_(image.floats().begin(), image.floats().end()), model_(image.Bind(memory_.data())) {
    HostExec exec;
    MakeFirstLayerTable(exec, model_);
  }
  std::string name() const override { return "cuda kernels on the host"; }
  uint64_t MemoryBytes() const override { return memory_.size() * sizeof(float); }
  const DeviceModel& model() const { return model_; }

 private:
  std::unique_ptr<Session> NewSession(std::shared_ptr<const Engine> self, int lanes, int max_rows) const override;
  FloatBuffer memory_;  // the "device" copy of the image
  DeviceModel model_;
};

class HostSession final : public Session {
 public:
  HostSession(std::shared_ptr<const HostEngine> engine, int lanes, int max_rows)
      : Session(lanes, max_rows),
        engine_(std::move(engine)),
        block_((SessionLayout(engine_->model(), lanes, max_rows).total_bytes + sizeof(float) - 1) / sizeof(float)),
        core_(&exec_, &engine_->model(), lanes, max_rows, block_.data()) {
    core_.ResetAll();
  }
  uint64_t AllocatedBytes() const override { return block_.size() * sizeof(float); }
  void ResetLane(int lane) override { core_.ResetLane(lane); }
  const float* logits() override { return core_.Logits(); }

 private:
  size_t RunNetwork(const LaneInput* inputs, int n_inputs) override { return core_.RunNetwork(inputs, n_inputs); }
  void Quantize(size_t rows, uint32_t* tables) override { core_.Quantize(rows, tables); }
  const std::shared_ptr<const HostEngine> engine_;
  HostExec exec_;
  FloatBuffer block_;  // the "device" allocation
  SessionCore<HostExec> core_;
};

std::unique_ptr<Session> HostEngine::NewSession(std::shared_ptr<const Engine> self, int lanes, int max_rows) const {
  return std::make_unique<HostSession>(std::static_pointer_cast<const HostEngine>(std::move(self)), lanes, max_rows);
}

}  // namespace

Result<std::shared_ptr<const Engine>> BuildHostEngine(const ModelWeights& weights) {
  BOA_ASSIGN_OR_RETURN(ModelImage image, ModelImage::Build(weights));
  return std::shared_ptr<const Engine>(std::make_shared<HostEngine>(std::move(image)));
}

}  // namespace boa::engine::cuda
