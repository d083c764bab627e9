#include "data/byte_tokenizer.h"

namespace tilegrad::data {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(std::span<const int32_t> ids) const {
  check_ids(ids, 256, "bytes");
  std::string out(ids.size(), '\0');
  for (size_t i = 0; i < ids.size(); ++i) out[i] = static_cast<char>(static_cast<uint8_t>(ids[i]));
  return out;
}

}  // namespace tilegrad::data
