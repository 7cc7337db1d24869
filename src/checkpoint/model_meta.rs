//! The metadata keys of a [`ModelInfo`], written and read: version 2's five (`input_scale`,
//! `input_shift`, `image`, `dataset`, `classes`), version 4's two (`input_maps`, `source`) and
//! version 5's `targets`.
//! Version 4 is written only when one of its keys is needed (per-channel or per-feature maps,
//! a source other than IDX images, an image of several channels), so that every file an older
//! build could use correctly stays readable there, and an older build refuses a file whose
//! inputs it would prepare wrongly.

use super::read::Meta;
use super::write::json_f32;
use super::*;
use crate::data::Normalize;
use crate::model::{Source, TableColumn, Target};
use crate::shape::Chw;

/// Whether `model` needs version 4's keys (version 5's imply them).
pub(super) fn needs_version_4(model: &ModelInfo) -> bool {
    !model.targets.is_empty()
        || !model.channel_maps.is_empty()
        || !model.feature_maps.is_empty()
        || model.source != Source::Idx
        || model.image.is_some_and(|i| i.c != 1)
}

/// The metadata entries of `model`.
pub(super) fn write(path: &Path, model: &ModelInfo) -> Result<Vec<(&'static str, String)>> {
    let number = |what, x| json_f32(path, what, x).map(|v| v.to_string());
    let mut out = vec![
        ("input_scale", number("input scale", model.normalize.scale)?),
        ("input_shift", number("input shift", model.normalize.shift)?),
        (
            "image",
            match model.image {
                // A single channel as `rows,cols`: what version 2 writes.
                Some(i) if i.c == 1 => format!("{},{}", i.h, i.w),
                Some(i) => format!("{},{},{}", i.c, i.h, i.w),
                None => "none".to_string(),
            },
        ),
        ("dataset", model.dataset.clone()),
        (
            "classes",
            Value::Array(model.classes.iter().cloned().map(Value::String).collect()).to_string(),
        ),
    ];
    if !needs_version_4(model) {
        return Ok(out);
    }
    let maps = |kind: &str, maps: &[Normalize]| -> Result<String> {
        let pairs = maps
            .iter()
            .map(|m| {
                Ok(Value::Array(vec![
                    json_f32(path, "input map scale", m.scale)?,
                    json_f32(path, "input map shift", m.shift)?,
                ]))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut obj = Map::new();
        obj.insert(kind.into(), Value::Array(pairs));
        Ok(Value::Object(obj).to_string())
    };
    let input_maps = match (&model.channel_maps[..], &model.feature_maps[..]) {
        ([], []) => "{}".to_string(),
        (c, []) => maps("channel", c)?,
        ([], f) => maps("feature", f)?,
        _ => {
            return Err(bad(
                path,
                "refusing to save: both per-channel and per-feature input maps",
            ));
        }
    };
    out.push(("input_maps", input_maps));
    out.push(("source", source_json(&model.source).to_string()));
    if !model.targets.is_empty() {
        let targets = model
            .targets
            .iter()
            .map(|t| {
                let mut obj = Map::new();
                obj.insert("name".into(), Value::String(t.name.clone()));
                obj.insert("scale".into(), json_f32(path, "target scale", t.map.scale)?);
                obj.insert("shift".into(), json_f32(path, "target shift", t.map.shift)?);
                Ok(Value::Object(obj))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(("targets", Value::Array(targets).to_string()));
    }
    Ok(out)
}

fn source_json(source: &Source) -> Value {
    match source {
        Source::Idx => "idx".into(),
        Source::Pictures => "pictures".into(),
        Source::Arrays => "arrays".into(),
        Source::Table { columns, label } => {
            let columns = columns
                .iter()
                .map(|c| match c {
                    TableColumn::Numeric { name } => serde_json::json!({ "name": name }),
                    TableColumn::OneHot { name, levels } => {
                        serde_json::json!({ "name": name, "levels": levels })
                    }
                })
                .collect();
            let mut table = Map::new();
            table.insert("label".into(), Value::String(label.clone()));
            table.insert("columns".into(), Value::Array(columns));
            let mut obj = Map::new();
            obj.insert("table".into(), Value::Object(table));
            Value::Object(obj)
        }
    }
}

/// The most per-channel or per-feature maps a checkpoint may claim: one per input value of the
/// largest input a checkpoint describes.
const MAX_MAPS: usize = 1 << 24;

impl Meta<'_> {
    /// The [`ModelInfo`] keys; version 4's are read when `version_4`.
    pub(super) fn model(&self, version_4: bool) -> Result<ModelInfo> {
        let normalize = Normalize {
            scale: self.f32("input_scale")?,
            shift: self.f32("input_shift")?,
        };
        let s = self.get("image")?;
        let image = if s == "none" {
            None
        } else {
            let dims = s
                .split(',')
                .map(|p| p.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>();
            match dims.as_deref() {
                Ok([rows, cols]) if *rows > 0 && *cols > 0 => Some(Chw::new(1, *rows, *cols)),
                Ok([c, rows, cols]) if version_4 && *c > 0 && *rows > 0 && *cols > 0 => {
                    Some(Chw::new(*c, *rows, *cols))
                }
                _ => {
                    return Err(self.malformed(
                        "image",
                        "`rows,cols`, `channels,rows,columns` (version 4) or `none`",
                        s,
                    ));
                }
            }
        };
        let dataset = self.get("dataset")?.to_string();
        let s = self.get("classes")?;
        let classes = match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(name) => Ok(name),
                    _ => Err(self.malformed("classes", "a JSON array of strings", s)),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(self.malformed("classes", "a JSON array of strings", s)),
        };
        let mut model = ModelInfo {
            image,
            dataset,
            classes,
            ..ModelInfo::plain(normalize)
        };
        if version_4 {
            self.input_maps(&mut model)?;
            model.source = self.source()?;
        }
        Ok(model)
    }

    fn input_maps(&self, model: &mut ModelInfo) -> Result<()> {
        let s = self.get("input_maps")?;
        let expected =
            "{}, {\"channel\": [[scale, shift], …]} or {\"feature\": [[scale, shift], …]}";
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(s) else {
            return Err(self.malformed("input_maps", expected, s));
        };
        let mut entries = obj.into_iter();
        let Some((kind, Value::Array(pairs))) = entries.next() else {
            return if entries.len() == 0 && s.trim() == "{}" {
                Ok(())
            } else {
                Err(self.malformed("input_maps", expected, s))
            };
        };
        if entries.next().is_some() || pairs.len() > MAX_MAPS {
            return Err(self.malformed("input_maps", expected, s));
        }
        let number = |v: &Value| match v {
            Value::Number(n) => n.to_string().parse::<f32>().ok().filter(|x| x.is_finite()),
            _ => None,
        };
        let maps = pairs
            .iter()
            .map(|p| match p.as_array().map(Vec::as_slice) {
                Some([a, b]) => match (number(a), number(b)) {
                    (Some(scale), Some(shift)) => Ok(Normalize { scale, shift }),
                    _ => Err(self.malformed("input_maps", "finite numbers", s)),
                },
                _ => Err(self.malformed("input_maps", expected, s)),
            })
            .collect::<Result<Vec<_>>>()?;
        match kind.as_str() {
            "channel" => model.channel_maps = maps,
            "feature" => model.feature_maps = maps,
            _ => return Err(self.malformed("input_maps", expected, s)),
        }
        Ok(())
    }

    /// Version 5's `targets`: at least one, each a name and a finite map.
    pub(super) fn targets(&self) -> Result<Vec<Target>> {
        let s = self.get("targets")?;
        let expected = "a non-empty JSON array of {\"name\", \"scale\", \"shift\"}";
        let bad_targets = || self.malformed("targets", expected, s);
        let Ok(Value::Array(items)) = serde_json::from_str::<Value>(s) else {
            return Err(bad_targets());
        };
        if items.is_empty() || items.len() > MAX_MAPS {
            return Err(bad_targets());
        }
        let number = |v: Option<&Value>| match v {
            Some(Value::Number(n)) => n.to_string().parse::<f32>().ok().filter(|x| x.is_finite()),
            _ => None,
        };
        items
            .iter()
            .map(|t| {
                let name = t.get("name").and_then(Value::as_str);
                match (name, number(t.get("scale")), number(t.get("shift"))) {
                    (Some(name), Some(scale), Some(shift)) => Ok(Target {
                        name: name.to_string(),
                        map: Normalize { scale, shift },
                    }),
                    _ => Err(bad_targets()),
                }
            })
            .collect()
    }

    fn source(&self) -> Result<Source> {
        let s = self.get("source")?;
        let expected = "\"idx\", \"pictures\", \"arrays\" or {\"table\": {\"label\", \"columns\"}}";
        let value: Value =
            serde_json::from_str(s).map_err(|_| self.malformed("source", expected, s))?;
        let table = match &value {
            Value::String(k) if k == "idx" => return Ok(Source::Idx),
            Value::String(k) if k == "pictures" => return Ok(Source::Pictures),
            Value::String(k) if k == "arrays" => return Ok(Source::Arrays),
            Value::Object(obj) if obj.len() == 1 => obj.get("table"),
            _ => None,
        };
        let bad_source = || self.malformed("source", expected, s);
        let table = table.and_then(Value::as_object).ok_or_else(bad_source)?;
        let label = table
            .get("label")
            .and_then(Value::as_str)
            .ok_or_else(bad_source)?
            .to_string();
        let columns = table
            .get("columns")
            .and_then(Value::as_array)
            .ok_or_else(bad_source)?
            .iter()
            .map(|c| {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(bad_source)?;
                let name = name.to_string();
                match c.get("levels") {
                    None => Ok(TableColumn::Numeric { name }),
                    Some(Value::Array(levels)) => {
                        let levels = levels
                            .iter()
                            .map(|l| l.as_str().map(str::to_string).ok_or_else(bad_source))
                            .collect::<Result<Vec<_>>>()?;
                        if levels.is_empty() {
                            return Err(bad_source());
                        }
                        Ok(TableColumn::OneHot { name, levels })
                    }
                    Some(_) => Err(bad_source()),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Source::Table { columns, label })
    }
}
