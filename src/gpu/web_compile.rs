//! Compiling a step's pipelines in parallel in a browser. wgpu creates pipelines only with
//! `createComputePipeline` (it has no async form, gfx-rs/wgpu#3794), which Chrome compiles one
//! after another on its GPU thread when they are first used: on a software adapter that was
//! most of the wait for the first step. `createComputePipelineAsync` compiles on worker
//! threads. It is given the very descriptor wgpu gives `createComputePipeline`
//! ([`super::kernels::build_kernel`]), and the browser's WebGPU keeps a device's pipelines in
//! a cache keyed by their content, so wgpu's own build that follows finds each one compiled.

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::backend::GpuBackend;
use super::context::GpuContext;
use super::kernels::{KernelId, KernelSpec, Kernels, layout_entry};
use crate::error::{Error, Result};
use crate::ops::gather::InputKind;
use crate::ops::loss::TargetKind;

impl GpuBackend {
    /// [`GpuBackend::prepare`], with the pipelines compiled in parallel by the browser.
    pub async fn prepare_async(
        &self,
        batch_size: usize,
        inputs: InputKind,
        targets: TargetKind,
    ) -> Result<()> {
        self.start_prepare(batch_size, inputs, targets)?
            .finish(&self.ctx)
            .await
    }

    /// Has the browser start compiling the pipelines [`GpuBackend::prepare`] builds, and
    /// returns at once: the page reads and uploads its data meanwhile. Await
    /// [`Preparing::finish`] before the first step, which would otherwise compile them again.
    pub fn start_prepare(
        &self,
        batch_size: usize,
        inputs: InputKind,
        targets: TargetKind,
    ) -> Result<Preparing> {
        let ids = self.step_kernels(batch_size, inputs, targets);
        self.ctx.kernels.start_prepare(&self.ctx, &ids)
    }
}

/// Pipelines the browser is compiling ([`GpuBackend::start_prepare`]).
pub struct Preparing {
    pending: Vec<(KernelId, String, JsFuture)>,
}

impl Preparing {
    /// Awaits the compilations, then builds each pipeline through wgpu (which finds it in
    /// the browser's cache). A pipeline the browser rejects is an [`Error::Gpu`] naming it,
    /// with its message.
    pub async fn finish(self, ctx: &GpuContext) -> Result<()> {
        // Held until wgpu has built each one: the browser caches a pipeline while it lives.
        let mut compiled = Vec::with_capacity(self.pending.len());
        for (id, name, future) in self.pending {
            compiled.push((id, future.await.map_err(|e| failed(&name, &e))?));
        }
        for &(id, _) in &compiled {
            ctx.kernels.get(ctx, id)?;
        }
        drop(compiled);
        ctx.settle_scopes().await
    }
}

impl Kernels {
    /// Has the browser start compiling the pipelines `ids` that are not built yet.
    pub fn start_prepare(&self, ctx: &GpuContext, ids: &[KernelId]) -> Result<Preparing> {
        let device: &JsValue = ctx
            .device
            .as_webgpu()
            .ok_or_else(|| Error::gpu("compiling pipelines", "the device is not WebGPU's"))?
            .as_ref();
        let mut wanted: Vec<KernelId> = Vec::new();
        for &id in ids {
            if !self.is_built(id) && !wanted.contains(&id) {
                wanted.push(id);
            }
        }
        let mut pending = Vec::new();
        for id in wanted {
            let spec = id.spec()?;
            let promise = compile(device, &spec).map_err(|e| failed(&spec.name, &e))?;
            pending.push((id, spec.name, JsFuture::from(promise)));
        }
        Ok(Preparing { pending })
    }
}

fn failed(name: &str, e: &JsValue) -> Error {
    let message = Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    Error::gpu(format!("compiling kernel `{name}`"), message)
}

fn set(target: &Object, key: &str, value: impl Into<JsValue>) -> std::result::Result<(), JsValue> {
    Reflect::set(target, &key.into(), &value.into()).map(|_| ())
}

/// `device.method(arg)`.
fn call(device: &JsValue, method: &str, arg: &JsValue) -> std::result::Result<JsValue, JsValue> {
    let f: Function = Reflect::get(device, &method.into())?.dyn_into()?;
    f.call1(device, arg)
}

/// `createComputePipelineAsync` of `spec`: its bind group layout, pipeline layout, WGSL module,
/// entry point `main` and override constants, as wgpu's WebGPU backend writes them.
fn compile(device: &JsValue, spec: &KernelSpec) -> std::result::Result<Promise, JsValue> {
    let entries = Array::new();
    for (i, &slot) in spec.slots.iter().enumerate() {
        let wgpu_entry = layout_entry(i as u32, slot);
        let wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset,
            min_binding_size: None,
        } = wgpu_entry.ty
        else {
            unreachable!("kernels bind only whole storage buffers")
        };
        let buffer = Object::new();
        set(&buffer, "hasDynamicOffset", has_dynamic_offset)?;
        let kind = match ty {
            wgpu::BufferBindingType::Uniform => "uniform",
            wgpu::BufferBindingType::Storage { read_only: true } => "read-only-storage",
            wgpu::BufferBindingType::Storage { read_only: false } => "storage",
        };
        set(&buffer, "type", kind)?;
        let entry = Object::new();
        set(&entry, "binding", wgpu_entry.binding)?;
        set(&entry, "visibility", wgpu_entry.visibility.bits())?;
        set(&entry, "buffer", buffer)?;
        entries.push(&entry);
    }
    let bgl_desc = Object::new();
    set(&bgl_desc, "entries", entries)?;
    let bgl = call(device, "createBindGroupLayout", &bgl_desc)?;
    let layout_desc = Object::new();
    set(&layout_desc, "bindGroupLayouts", Array::of1(&bgl))?;
    let layout = call(device, "createPipelineLayout", &layout_desc)?;
    let module_desc = Object::new();
    set(&module_desc, "code", spec.source.as_str())?;
    let module = call(device, "createShaderModule", &module_desc)?;
    let stage = Object::new();
    set(&stage, "module", module)?;
    set(&stage, "entryPoint", "main")?;
    if !spec.constants.is_empty() {
        let constants = Object::new();
        for &(name, value) in &spec.constants {
            set(&constants, name, value)?;
        }
        set(&stage, "constants", constants)?;
    }
    let desc = Object::new();
    set(&desc, "label", spec.name.as_str())?;
    set(&desc, "layout", layout)?;
    set(&desc, "compute", stage)?;
    call(device, "createComputePipelineAsync", &desc)?.dyn_into()
}
