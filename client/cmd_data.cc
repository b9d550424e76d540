// wfm upload, datasets, delete-dataset.
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cells.h"
#include "client/conditions.h"
#include "client/commands.h"
#include "client/output.h"
#include "client/progress.h"
#include "model/common/status.h"
#include "model/io/npz.h"
#include "model/io/point_sets.h"

namespace wfm::client {
namespace {

namespace io = ::wfm::model::io;

struct UploadFlags {
  std::string file;
  std::string name;
  std::string description;
  bool overwrite = false;
  CellReadOptions cells;
  // .h5ad Gaussians: obsm keys of the means and covariances.
  std::string means_key;
  std::string covs_key;
  bool json = false;
  // Set when the .h5ad-only flags were given (an error for .npz files).
  std::vector<std::string> h5ad_flags;
};

// "my-data" from "/x/my-data.npz"; "" when the stem is not a valid name.
std::string DefaultName(const std::string& path) {
  std::string stem = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  const size_t dot = stem.rfind('.');
  if (dot != std::string::npos) stem = stem.substr(0, dot);
  if (stem.empty() || stem.size() > 64) return "";
  for (char c : stem) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return "";
  }
  return stem;
}

std::string Describe(const v1::Dataset& d) {
  std::string text = absl::StrCat("'", d.name(), "': ", DatasetKindName(d.kind()), ", ", d.items());
  switch (d.kind()) {
    case v1::POINT_CLOUDS:
      absl::StrAppend(&text, " clouds of dimension ", d.dim(), " (", d.min_size(), "-", d.max_size(),
                      " points, ", d.points(), " in all)");
      break;
    case v1::GAUSSIANS:
      absl::StrAppend(&text, " Gaussians of dimension ", d.dim());
      break;
    case v1::SPATIAL_CELLS:
      absl::StrAppend(&text, " cells with ", d.dim(), " features in ", d.samples(),
                      d.samples() == 1 ? " sample" : " samples");
      if (d.spatial_dim() > 0 && d.spatial_dim() != 2) {
        absl::StrAppend(&text, ", ", d.spatial_dim(), "-D coordinates");
      }
      break;
    default:
      break;
  }
  if (d.label_type() == v1::LABEL_TYPE_DISCRETE) {
    absl::StrAppend(&text, ", ", d.label_names_size(), " labels (",
                    absl::StrJoin(d.label_names().begin(),
                                  d.label_names().begin() + std::min(d.label_names_size(), 8), ", "),
                    d.label_names_size() > 8 ? ", ..." : "", ")");
  } else if (d.label_type() == v1::LABEL_TYPE_CONTINUOUS) {
    absl::StrAppend(&text, ", condition vectors of dimension ", d.condition_dim());
    if (d.condition_columns_size() > 0) {
      absl::StrAppend(&text, " from ", DescribeConditionColumns(d.condition_columns()));
    }
  }
  absl::StrAppend(&text, ", ", FormatBytes(d.size_bytes()));
  return text;
}

absl::Status Upload(CliContext& context, const UploadFlags& flags) {
  const std::string ext = Extension(flags.file);
  if (ext != ".npz" && ext != ".h5ad") {
    return absl::InvalidArgumentError(absl::StrCat(
        flags.file, ": unsupported file type '", ext.empty() ? std::string("(none)") : ext,
        "'; upload takes .npz (point clouds or Gaussians) or .h5ad (spatial cells, or "
        "Gaussians with --means-key and --covs-key)"));
  }
  if (ext == ".npz" && !flags.h5ad_flags.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(absl::StrJoin(flags.h5ad_flags, ", "),
                                                   " apply to .h5ad files only; ", flags.file,
                                                   " is an .npz file"));
  }
  UploadInfo info{flags.name, flags.description, flags.overwrite};
  if (info.name.empty()) info.name = DefaultName(flags.file);
  if (info.name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--name is required: the file name of ", flags.file,
        " is not a valid data set name ([A-Za-z0-9._-]{1,64})"));
  }
  // Everything local is read and checked before the server is contacted.
  io::PointCloudSet clouds;
  io::GaussianSet gaussians;
  SpatialCells cells;
  std::unique_ptr<UploadChunker> chunker;
  v1::DatasetHeader header;
  std::string unit;
  if (ext == ".npz") {
    WFM_ASSIGN_OR_RETURN(io::NpzArrays arrays, io::ReadNpz(flags.file));
    WFM_ASSIGN_OR_RETURN(const io::NpzKind kind, io::DetectNpzKind(arrays, flags.file));
    if (kind == io::NpzKind::kPointClouds) {
      WFM_ASSIGN_OR_RETURN(clouds, io::PointCloudsFromArrays(std::move(arrays), flags.file));
      WFM_ASSIGN_OR_RETURN(header, PointCloudHeader(info, clouds));
      chunker = std::make_unique<PointCloudChunker>(clouds);
      unit = "clouds";
    } else {
      WFM_ASSIGN_OR_RETURN(gaussians, io::GaussiansFromArrays(std::move(arrays), flags.file));
      WFM_ASSIGN_OR_RETURN(header, GaussianHeader(info, gaussians));
      chunker = std::make_unique<GaussianChunker>(gaussians);
      unit = "Gaussians";
    }
  } else if (!flags.means_key.empty() || !flags.covs_key.empty()) {
    // Gaussians: one per obs row, with labels or conditions from obs/obsm.
    if (flags.means_key.empty() || flags.covs_key.empty()) {
      return absl::InvalidArgumentError(
          "--means-key and --covs-key: Gaussians from an .h5ad need both (obsm keys)");
    }
    for (const std::string& flag : flags.h5ad_flags) {
      if (flag != "--means-key" && flag != "--covs-key" && flag != "--condition-key") {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, " applies to spatial cells, not to Gaussians (--means-key)"));
      }
    }
    GaussianReadOptions options;
    options.means_key = flags.means_key;
    options.covs_key = flags.covs_key;
    options.condition_keys = flags.cells.condition_keys;
    WFM_ASSIGN_OR_RETURN(H5adGaussians read, ReadGaussiansH5ad(flags.file, options));
    gaussians = std::move(read.gaussians);
    WFM_ASSIGN_OR_RETURN(header, GaussianHeader(info, gaussians));
    for (const v1::ConditionColumn& c : read.condition_columns) {
      *header.add_condition_columns() = c;
    }
    chunker = std::make_unique<GaussianChunker>(gaussians);
    unit = "Gaussians";
  } else {
    WFM_ASSIGN_OR_RETURN(cells, ReadSpatialCells(flags.file, flags.cells));
    WFM_ASSIGN_OR_RETURN(header, CellHeader(info, cells));
    chunker = std::make_unique<CellChunker>(cells);
    unit = "cells";
  }
  WFM_ASSIGN_OR_RETURN(Client * client, context.client());
  ProgressLine line(stderr, context.interactive(), context.global.quiet || !context.interactive());
  WFM_ASSIGN_OR_RETURN(const v1::Dataset dataset,
                       client->Upload(header, *chunker, [&](int64_t done, int64_t total) {
                         line.Update(absl::StrCat("uploading ", Bar(done, total, 24), " ", done,
                                                  "/", total, " ", unit),
                                     done == total);
                       }));
  line.Finish();
  if (flags.json) {
    PrintJson(ProtoToJson(dataset));
  } else {
    std::printf("uploaded %s\n", Describe(dataset).c_str());
  }
  return absl::OkStatus();
}

}  // namespace

void AddDataCommands(CLI::App& app, CliContext& context) {
  // upload
  auto up = std::make_shared<UploadFlags>();
  CLI::App* upload = app.add_subcommand(
      "upload",
      "upload a data set: .npz point clouds or Gaussians, .h5ad spatial cells, or .h5ad "
      "Gaussians (--means-key, --covs-key)");
  upload->add_option("FILE", up->file, ".npz or .h5ad file")->required();
  upload->add_option("--name", up->name, "data set name (default: the file name without extension)");
  upload->add_option("--description", up->description, "free text stored with the data set");
  upload->add_flag("--overwrite", up->overwrite, "replace a data set of the same name");
  upload->add_flag("--json", up->json, "print the stored data set as one JSON document");
  auto track = [up](const char* flag) {
    return [up, flag](const std::string&) { up->h5ad_flags.push_back(flag); };
  };
  upload->add_option_function<std::string>(
      "--features",
      [up, track](const std::string& v) {
        up->cells.features = v;
        track("--features")(v);
      },
      ".h5ad: per-cell features, X or obsm:KEY (default X)");
  upload->add_option_function<std::string>(
      "--spatial-key",
      [up, track](const std::string& v) {
        up->cells.spatial_key = v;
        track("--spatial-key")(v);
      },
      ".h5ad: obsm key of the spatial coordinates, 2-D or 3-D (default spatial)");
  upload->add_option_function<std::string>(
      "--label-key",
      [up, track](const std::string& v) {
        up->cells.label_key = v;
        track("--label-key")(v);
      },
      ".h5ad: obs column of the cell labels (e.g. cell type); default none");
  upload->add_option_function<std::vector<std::string>>(
      "--condition-key",
      [up, track](const std::vector<std::string>& keys) {
        up->cells.condition_keys = keys;
        track("--condition-key")("");
      },
      ".h5ad, repeatable: condition the niches (or Gaussians) on obs columns (categorical "
      "one-hot, numeric as is) and obsm:KEY vectors, concatenated; one categorical column = "
      "discrete labels, as --label-key")
      ->allow_extra_args(false)
      ->take_all();
  upload->add_option_function<std::string>(
      "--sample-key",
      [up, track](const std::string& v) {
        up->cells.sample_key = v;
        track("--sample-key")(v);
      },
      ".h5ad: obs column of the sample / section ids; default: one sample");
  upload->add_option_function<std::string>(
      "--means-key",
      [up, track](const std::string& v) {
        up->means_key = v;
        track("--means-key")(v);
      },
      ".h5ad of Gaussians, one per obs row: obsm key of the means [n_obs, d] (with --covs-key)");
  upload->add_option_function<std::string>(
      "--covs-key",
      [up, track](const std::string& v) {
        up->covs_key = v;
        track("--covs-key")(v);
      },
      ".h5ad of Gaussians: obsm key of the covariances [n_obs, d, d] (with --means-key)");
  upload->callback([&context, up] { context.action = [&context, up] { return Upload(context, *up); }; });

  // datasets
  auto list_json = std::make_shared<bool>(false);
  auto list_name = std::make_shared<std::string>();
  CLI::App* datasets = app.add_subcommand("datasets", "list the stored data sets (or show one)");
  datasets->add_option("NAME", *list_name, "show this data set only");
  datasets->add_flag("--json", *list_json, "print one JSON document");
  datasets->callback([&context, list_json, list_name] {
    context.action = [&context, list_json, list_name]() -> absl::Status {
      WFM_ASSIGN_OR_RETURN(Client * client, context.client());
      if (!list_name->empty()) {
        WFM_ASSIGN_OR_RETURN(const v1::Dataset d, client->GetDataset(*list_name));
        if (*list_json) {
          PrintJson(ProtoToJson(d));
        } else {
          std::printf("%s", DatasetsTable({d}).c_str());
        }
        return absl::OkStatus();
      }
      WFM_ASSIGN_OR_RETURN(const std::vector<v1::Dataset> all, client->ListDatasets());
      if (*list_json) {
        nlohmann::json array = nlohmann::json::array();
        for (const v1::Dataset& d : all) array.push_back(ProtoToJson(d));
        PrintJson({{"datasets", array}});
      } else if (all.empty()) {
        std::printf("no data sets (add one with: wfm upload FILE --name NAME)\n");
      } else {
        std::printf("%s", DatasetsTable(all).c_str());
      }
      return absl::OkStatus();
    };
  });

  // delete-dataset
  auto delete_name = std::make_shared<std::string>();
  CLI::App* del = app.add_subcommand("delete-dataset", "delete a stored data set");
  del->add_option("NAME", *delete_name, "data set name")->required();
  del->callback([&context, delete_name] {
    context.action = [&context, delete_name]() -> absl::Status {
      WFM_ASSIGN_OR_RETURN(Client * client, context.client());
      WFM_RETURN_IF_ERROR(client->DeleteDataset(*delete_name));
      std::printf("deleted data set '%s'\n", delete_name->c_str());
      return absl::OkStatus();
    };
  });
}

}  // namespace wfm::client
