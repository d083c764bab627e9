// The memtrace SVG plot, read back: a small XML checker (balanced tags, quoted attributes, valid
// entities, a single <svg> root in the SVG namespace) and the data the picture carries, which must
// be the tracker's: one series per category present, each equal to the timeline's readings, and a
// plotted maximum equal to the tracker's peak.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/memtrace_experiment.h"
#include "apps/plot_svg.h"

namespace {

using tilegrad::Category;
using tilegrad::kNumCategories;
using tilegrad::MemoryEvent;

struct Element {
  std::string name;
  std::map<std::string, std::string> attrs;  // values with entities decoded
  std::string text;                          // character data directly inside, decoded
};

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ':' ||
         c == '.';
}

// Decodes the five predefined entities and numeric references; false on a bare '&' or '<'.
bool decode(const std::string& raw, std::string& out) {
  out.clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '<') return false;
    if (raw[i] != '&') {
      out += raw[i];
      continue;
    }
    const size_t semi = raw.find(';', i);
    if (semi == std::string::npos) return false;
    const std::string ent = raw.substr(i + 1, semi - i - 1);
    static const std::map<std::string, char> kNamed = {
        {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
    if (auto it = kNamed.find(ent); it != kNamed.end()) {
      out += it->second;
    } else if (ent.size() > 1 && ent[0] == '#' &&
               ent.find_first_not_of("0123456789", 1) == std::string::npos) {
      out += static_cast<char>(std::stoi(ent.substr(1)));
    } else {
      return false;
    }
    i = semi;
  }
  return true;
}

// Checks that `doc` is a well-formed XML document (the subset an SVG writer needs: a prolog,
// comments, elements, attributes, text) and returns its elements in document order. Returns an
// empty string when well-formed, else the first problem.
std::string check_xml(const std::string& doc, std::vector<Element>& elements) {
  elements.clear();
  std::vector<size_t> open;  // indices into elements
  bool root_done = false;
  size_t i = 0;
  auto at = [&](const char* s) { return doc.compare(i, std::strlen(s), s) == 0; };
  if (at("<?xml")) {
    const size_t end = doc.find("?>", i);
    if (end == std::string::npos) return "unterminated prolog";
    i = end + 2;
  }
  while (i < doc.size()) {
    if (doc[i] != '<') {
      const size_t next = doc.find('<', i);
      const std::string raw =
          doc.substr(i, next == std::string::npos ? std::string::npos : next - i);
      std::string text;
      if (!decode(raw, text)) return "bad character data: " + raw;
      if (open.empty()) {
        if (raw.find_first_not_of(" \t\r\n") != std::string::npos) {
          return "text outside the root: " + raw;
        }
      } else {
        elements[open.back()].text += text;
      }
      i = next == std::string::npos ? doc.size() : next;
      continue;
    }
    if (at("<!--")) {
      const size_t end = doc.find("-->", i);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    if (at("</")) {
      i += 2;
      const size_t start = i;
      while (i < doc.size() && name_char(doc[i])) ++i;
      const std::string name = doc.substr(start, i - start);
      while (i < doc.size() && std::isspace(static_cast<unsigned char>(doc[i]))) ++i;
      if (i >= doc.size() || doc[i] != '>') return "bad end tag </" + name;
      ++i;
      if (open.empty() || elements[open.back()].name != name) {
        return "end tag </" + name + "> does not match " +
               (open.empty() ? std::string("nothing") : "<" + elements[open.back()].name + ">");
      }
      open.pop_back();
      if (open.empty()) root_done = true;
      continue;
    }
    ++i;
    const size_t start = i;
    while (i < doc.size() && name_char(doc[i])) ++i;
    Element e;
    e.name = doc.substr(start, i - start);
    if (e.name.empty()) return "empty tag name at " + std::to_string(start);
    if (open.empty() && (root_done || !elements.empty())) return "second root <" + e.name + ">";
    bool self_closing = false;
    while (true) {
      const size_t before = i;
      while (i < doc.size() && std::isspace(static_cast<unsigned char>(doc[i]))) ++i;
      if (i >= doc.size()) return "unterminated tag <" + e.name;
      if (at("/>")) {
        i += 2;
        self_closing = true;
        break;
      }
      if (doc[i] == '>') {
        ++i;
        break;
      }
      if (i == before) return "attributes of <" + e.name + "> not separated by space";
      const size_t a0 = i;
      while (i < doc.size() && name_char(doc[i])) ++i;
      const std::string attr = doc.substr(a0, i - a0);
      if (attr.empty() || i >= doc.size() || doc[i] != '=') {
        return "bad attribute in <" + e.name + "> at " + std::to_string(a0);
      }
      ++i;
      if (i >= doc.size() || (doc[i] != '"' && doc[i] != '\'')) {
        return "unquoted attribute " + attr + " in <" + e.name + ">";
      }
      const char quote = doc[i++];
      const size_t end = doc.find(quote, i);
      if (end == std::string::npos) return "unterminated attribute " + attr;
      std::string value;
      if (!decode(doc.substr(i, end - i), value)) return "bad attribute value of " + attr;
      if (!e.attrs.emplace(attr, value).second) return "duplicate attribute " + attr;
      i = end + 1;
    }
    elements.push_back(std::move(e));
    if (!self_closing)
      open.push_back(elements.size() - 1);
    else if (open.empty())
      root_done = true;
  }
  if (!open.empty()) return "unclosed <" + elements[open.back()].name + ">";
  if (elements.empty()) return "no root element";
  return "";
}

std::vector<int64_t> numbers(const std::string& s) {
  std::vector<int64_t> out;
  std::istringstream in(s);
  int64_t v = 0;
  while (in >> v) out.push_back(v);
  return out;
}

TEST(XmlChecker, RejectsMalformedDocuments) {
  std::vector<Element> el;
  EXPECT_EQ(check_xml("<svg a=\"1\"><g/><text>x &amp; y</text></svg>", el), "");
  EXPECT_EQ(el.size(), 3u);
  EXPECT_EQ(el[2].text, "x & y");
  EXPECT_NE(check_xml("<svg><g></svg>", el), "");
  EXPECT_NE(check_xml("<svg a=1></svg>", el), "");
  EXPECT_NE(check_xml("<svg><text>a < b</text></svg>", el), "");
  EXPECT_NE(check_xml("<svg><text>a & b</text></svg>", el), "");
  EXPECT_NE(check_xml("<svg></svg><svg></svg>", el), "");
  EXPECT_NE(check_xml("<svg a=\"1\" a=\"2\"></svg>", el), "");
  EXPECT_NE(check_xml("<svg>", el), "");
}

class MemtracePlot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tilegrad::apps::MemtraceConfig c;
    c.layers = 4;
    c.batch = 40;
    c.dim = 10;
    c.record_timeline = true;
    result_ = new tilegrad::apps::MemtraceResult(tilegrad::apps::run_memtrace(c));
    svg_ = new std::string(tilegrad::apps::memtrace_svg(*result_));
  }
  static void TearDownTestSuite() {
    delete result_;
    delete svg_;
  }
  static tilegrad::apps::MemtraceResult* result_;
  static std::string* svg_;
};
tilegrad::apps::MemtraceResult* MemtracePlot::result_ = nullptr;
std::string* MemtracePlot::svg_ = nullptr;

TEST_F(MemtracePlot, IsWellFormedSvg) {
  std::vector<Element> el;
  ASSERT_EQ(check_xml(*svg_, el), "");
  ASSERT_FALSE(el.empty());
  EXPECT_EQ(el[0].name, "svg");
  EXPECT_EQ(el[0].attrs["xmlns"], "http://www.w3.org/2000/svg");
  EXPECT_TRUE(el[0].attrs.count("viewBox"));
  // Self-contained: nothing refers outside the file.
  EXPECT_EQ(svg_->find("href"), std::string::npos);
  EXPECT_EQ(svg_->find("<script"), std::string::npos);
  EXPECT_EQ(svg_->find("url("), std::string::npos);
}

TEST_F(MemtracePlot, OneSeriesPerCategoryPresentWithTheTimelinesBytes) {
  const auto& r = *result_;
  ASSERT_FALSE(r.timeline.empty());
  std::vector<Element> el;
  ASSERT_EQ(check_xml(*svg_, el), "");
  const size_t n_states = r.timeline.size() + 1;
  EXPECT_EQ(el[0].attrs["data-states"], std::to_string(n_states));

  std::set<std::string> present;
  for (const MemoryEvent& e : r.timeline) {
    for (int c = 0; c < kNumCategories; ++c) {
      if (e.live_by_category[c] != 0) {
        present.insert(std::string(tilegrad::category_name(static_cast<Category>(c))));
      }
    }
  }
  // This chain holds weights, input, activations and gradients; no optimizer, no workspace.
  EXPECT_EQ(present, (std::set<std::string>{"parameter", "other", "activation", "gradient"}));

  std::map<std::string, std::vector<int64_t>> series;
  for (const Element& e : el) {
    auto it = e.attrs.find("data-category");
    if (it == e.attrs.end()) continue;
    EXPECT_EQ(e.name, "path");
    EXPECT_TRUE(series.emplace(it->second, numbers(e.attrs.at("data-bytes"))).second)
        << "two series for " << it->second;
  }
  std::set<std::string> plotted;
  for (const auto& [name, v] : series) plotted.insert(name);
  EXPECT_EQ(plotted, present);

  // Each series is the tracker's reading after every event (state i+1 after event i).
  std::vector<int64_t> total(n_states, 0);
  for (const auto& [name, v] : series) {
    ASSERT_EQ(v.size(), n_states) << name;
    int c = 0;
    while (c < kNumCategories && tilegrad::category_name(static_cast<Category>(c)) != name) ++c;
    ASSERT_LT(c, kNumCategories) << name;
    for (size_t i = 0; i < r.timeline.size(); ++i) {
      EXPECT_EQ(v[i + 1], r.timeline[i].live_by_category[c]) << name << " after event " << i;
    }
    for (size_t s = 0; s < n_states; ++s) total[s] += v[s];
  }
  for (size_t i = 0; i < r.timeline.size(); ++i) EXPECT_EQ(total[i + 1], r.timeline[i].live_after);
  // The state before the first event is the setup: the weights and the input.
  EXPECT_EQ(total[0], r.setup.live);

  // The plotted maximum is the tracker's peak.
  const int64_t plotted_max = *std::max_element(total.begin(), total.end());
  EXPECT_EQ(plotted_max, r.peak_bytes);
  EXPECT_EQ(el[0].attrs["data-max-bytes"], std::to_string(r.peak_bytes));
}

TEST_F(MemtracePlot, HasTitleAxesLegendAndTheBackwardMark) {
  std::vector<Element> el;
  ASSERT_EQ(check_xml(*svg_, el), "");
  std::vector<std::string> texts;
  std::string title;
  for (const Element& e : el) {
    if (e.name == "text") texts.push_back(e.text);
    if (e.name == "title") title = e.text;
  }
  const std::string config =
      "L = 4, batch 40, dim 10, " + std::string(tilegrad::dtype_name(tilegrad::DType::f64));
  EXPECT_NE(title.find(config), std::string::npos) << title;
  auto has = [&](const std::string& t) {
    return std::find(texts.begin(), texts.end(), t) != texts.end();
  };
  for (const char* t : {"live MB", "allocate/free events", "forward", "backward", "parameter",
                        "other", "activation", "gradient", "0"}) {
    EXPECT_TRUE(has(t)) << t;
  }
  // The backward begins after the forward's allocations and before the end of the timeline.
  const auto& r = *result_;
  EXPECT_GT(r.timeline_backward_start, 0);
  EXPECT_LT(r.timeline_backward_start, static_cast<int64_t>(r.timeline.size()));
  // Every forward event is an activation allocation (x_1..x_4 and the loss).
  for (int64_t i = 0; i < r.timeline_backward_start; ++i) {
    EXPECT_EQ(r.timeline[static_cast<size_t>(i)].category, Category::activation);
  }
}

TEST(TimelineSvg, EscapesTextAndHandlesAnEmptyTimeline) {
  tilegrad::apps::TimelinePlot plot;
  plot.title = "a <b> & \"c\" 'd'";
  plot.subtitle = "x < y";
  const std::string svg = tilegrad::apps::timeline_svg({}, plot);
  std::vector<Element> el;
  ASSERT_EQ(check_xml(svg, el), "");
  EXPECT_EQ(el[0].attrs["data-max-bytes"], "0");
  bool found = false;
  for (const Element& e : el) found = found || (e.name == "title" && e.text == plot.title);
  EXPECT_TRUE(found);
  EXPECT_EQ(tilegrad::apps::xml_escape("<&>\"'"), "&lt;&amp;&gt;&quot;&apos;");
}

}  // namespace
