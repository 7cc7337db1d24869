//! The user's own data in the page: a dropped folder of pictures (read by the ingest worker,
//! [`crate::ingest`]), a CSV or an `.npz`, prepared by `soma::data::intake` exactly as native
//! `train` prepares the same files (classes, split, maps, model record), and described for
//! the page's listing: classes with counts and thumbnails, the input shape, the split.

use std::path::Path;

use js_sys::Uint8Array;
use serde::{Deserialize, Serialize};
use soma::data::csv::{self, CsvOptions};
use soma::data::intake::{self, Task};
use soma::data::prepare::{PrepareOptions, Prepared};
use soma::data::{Inputs, Targets, npy};
use wasm_bindgen::prelude::*;

use crate::ingest::from_js_folder;
use crate::trainer::{from_js, input_bytes, js, rgba, to_js};

/// How the page asks data to be prepared: `{val, splitSeed, label}`, each optional, with
/// native `train`'s defaults (`--val 0.2`, `--split-seed 0`, the label column found by name).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct DataOptions {
    val: Option<f64>,
    split_seed: Option<u64>,
    /// A table's label column, by name or 0-based index.
    label: Option<String>,
}

impl DataOptions {
    fn read(options: JsValue) -> Result<DataOptions, JsError> {
        from_js(options, "data options")
    }

    fn prepare(&self) -> PrepareOptions {
        let d = PrepareOptions::default();
        PrepareOptions {
            val: self.val.unwrap_or(d.val),
            seed: self.split_seed.unwrap_or(d.seed),
            fill: None,
        }
    }
}

/// Data the user brought, prepared for training.
#[wasm_bindgen]
pub struct UserData {
    pub(crate) prepared: Prepared,
    format: &'static str,
    name: String,
    /// Pictures that could not be read, with the reason (the rest trains).
    bad: Vec<(String, String)>,
    ignored: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClassCount {
    name: String,
    train: usize,
    test: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    format: &'static str,
    name: String,
    classes: Vec<ClassCount>,
    /// `[channels, height, width]` for pictures and image arrays, else `null`.
    image: Option<[usize; 3]>,
    features: usize,
    train_samples: usize,
    test_samples: usize,
    split: String,
    notes: Vec<String>,
    bad: Vec<(String, String)>,
    ignored: usize,
    /// The bytes the two parts' inputs take in memory.
    bytes: f64,
}

#[wasm_bindgen]
impl UserData {
    /// A folder as the ingest worker read it (`readPictures`' answer), its root's name being
    /// `root`.
    #[wasm_bindgen(js_name = fromFolder)]
    pub fn from_folder(
        root: String,
        found: JsValue,
        options: JsValue,
    ) -> Result<UserData, JsError> {
        let options = DataOptions::read(options)?;
        let data = from_js_folder(&found)?;
        let bad = data
            .bad
            .iter()
            .map(|(p, why)| (p.display().to_string(), why.clone()))
            .collect();
        let ignored = data.ignored.len();
        let prepared = intake::pictures(Path::new(&root), data, &options.prepare()).map_err(js)?;
        Ok(UserData {
            prepared,
            format: "folder",
            name: root,
            bad,
            ignored,
        })
    }

    /// A CSV or TSV file's bytes (`name` is what errors name).
    #[wasm_bindgen(js_name = fromTable)]
    pub fn from_table(name: String, bytes: Vec<u8>, options: JsValue) -> Result<UserData, JsError> {
        let options = DataOptions::read(options)?;
        let label = options.label.as_ref().map(|l| match l.parse::<usize>() {
            Ok(i) => csv::LabelColumn::Index(i),
            Err(_) => csv::LabelColumn::Name(l.clone()),
        });
        let path = Path::new(&name);
        let table = csv::parse_csv(
            path,
            &bytes,
            &CsvOptions {
                label,
                ..CsvOptions::default()
            },
        )
        .map_err(js)?;
        drop(bytes);
        let prepared = intake::table(path, table, None, Task::Classification, &options.prepare())
            .map_err(js)?;
        Ok(UserData::plain(prepared, "csv", name))
    }

    /// An `.npz` file's bytes: `x_train`, `y_train` (and `x_test`, `y_test`), or `x` and `y`.
    #[wasm_bindgen(js_name = fromNpz)]
    pub fn from_npz(name: String, bytes: Vec<u8>, options: JsValue) -> Result<UserData, JsError> {
        let options = DataOptions::read(options)?;
        let path = Path::new(&name);
        let members = npy::read_npz_bytes(path, &bytes).map_err(js)?;
        drop(bytes);
        let prepared = intake::npz(
            path,
            members,
            None,
            Task::Classification,
            &options.prepare(),
        )
        .map_err(js)?;
        Ok(UserData::plain(prepared, "npz", name))
    }

    /// What was found: `{format, name, classes: [{name, train, test}], image, features,
    /// trainSamples, testSamples, split, notes, bad: [[file, reason]], ignored, bytes}`.
    pub fn summary(&self) -> Result<JsValue, JsError> {
        let p = &self.prepared;
        let classes = p
            .model
            .classes
            .iter()
            .zip(p.class_counts())
            .map(|(name, (train, test))| ClassCount {
                name: name.clone(),
                train,
                test,
            })
            .collect();
        to_js(&Summary {
            format: self.format,
            name: self.name.clone(),
            classes,
            image: p.train.image.map(|c| [c.c, c.h, c.w]),
            features: p.train.features(),
            train_samples: p.train.len(),
            test_samples: p.test.len(),
            split: p.split.clone(),
            notes: p.notes.clone(),
            bad: self.bad.clone(),
            ignored: self.ignored,
            bytes: (input_bytes(&p.train) + input_bytes(&p.test)) as f64,
        })
    }

    /// Up to `per_class` training pictures of class `class` as RGBA bytes of the image's
    /// height × width each, one after another (empty for vectors).
    pub fn thumbnails(&self, class: u32, per_class: usize) -> Uint8Array {
        let train = &self.prepared.train;
        let (Some(image), Inputs::U8(pixels), Targets::Labels { labels, .. }) =
            (train.image, train.inputs(), train.targets())
        else {
            return Uint8Array::new_with_length(0);
        };
        let n = image.len();
        let out: Vec<u8> = labels
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == class)
            .take(per_class)
            .flat_map(|(i, _)| rgba(&pixels[i * n..(i + 1) * n], image))
            .collect();
        Uint8Array::from(&out[..])
    }
}

impl UserData {
    fn plain(prepared: Prepared, format: &'static str, name: String) -> UserData {
        UserData {
            prepared,
            format,
            name,
            bad: Vec::new(),
            ignored: 0,
        }
    }
}
