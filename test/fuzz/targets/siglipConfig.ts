import { detectArchitecture } from '../../../server/converter/checkpointConfig';
import { checkLayerCounts } from '../../../server/converter/expectedTensors';
import { expectedSiglipTensors } from '../../../server/converter/siglipCheckpoint';
import { parseSiglipConfig } from '../../../server/converter/siglipConfig';
import { expectRefusal, invariant, type FuzzTarget } from '../target';
import { checkTextAndTokens, readParts, twoLayerStore } from './configCommon';
import { scratchDir } from './scratch';

/**
 * Input: the SigLIP variant's config.json and its tower's config.json separated by a NUL byte, read and validated as
 * the SigLIP checkpoint opener does (including `image_grid_pinpoints` in both its forms), then sized into tensors.
 */
let dir = '';
const FILES = ['config.json', 'tower-config.json'];
export const target: FuzzTarget = {
  maxLength: 16 * 1024,
  dictionary: [
    '"model_type"', '"diffusionvl_qwen"', '"siglip"', '"vision_config"', '"mm_vision_tower"', '"google/siglip2-so400m-patch14-384"',
    '"mm_projector_type"', '"mlp2x_gelu"', '"mm_patch_merge_type"', '"spatial_unpad"', '"mm_use_im_patch_token"', '"image_aspect_ratio"',
    '"anyres_max_9"', '"pad"', '"image_grid_pinpoints"', '"(1x1),...,(6x6)"', '(1x1)', ',...,', '"num_hidden_layers"', '"hidden_size"',
    '"num_attention_heads"', '"image_size"', '"patch_size"', '"hidden_act"', '"mm_hidden_size"', '"tokenizer_model_max_length"', 'false', 'null', '\u0000',
  ],
  setup() {
    dir = scratchDir('siglip-config');
    return Promise.resolve();
  },
  async fuzz(data) {
    let cfg;
    try {
      const [config, towerConfig] = await readParts(dir, data, FILES);
      if (!config) throw new Error('config.json: empty input');
      if (detectArchitecture(config) !== 'diffusionvl_qwen') throw new Error('config.json: not a DiffusionVL-Qwen (SigLIP) checkpoint');
      cfg = parseSiglipConfig({ config, towerConfig: towerConfig ?? {}, towerConfigSource: 'tower-config.json', hasLmHead: data.length % 2 === 0 });
    } catch (err) {
      expectRefusal(err, { kinds: ['unsupportedCheckpoint'], plainNaming: FILES });
      return;
    }
    checkTextAndTokens(cfg.text, cfg.tokens);
    invariant(cfg.anyres.aspectRatio === 'pad' || cfg.anyres.gridPinpoints.length > 0, 'anyres with no grid to pick');
    invariant(cfg.anyres.gridPinpoints.every(([w, h]) => w > 0 && h > 0 && w % 384 === 0 && h % 384 === 0), 'a grid pinpoint off the 384-px views');
    // Then as the opener goes on, against a checkpoint that stores two layers of each kind.
    try {
      checkLayerCounts([{ field: 'num_hidden_layers', count: cfg.text.numLayers, probe: (i) => `model.layers.${i}.input_layernorm.weight` }], twoLayerStore, 'config.json');
      checkLayerCounts([{ field: 'num_hidden_layers', count: cfg.vision.numLayers, probe: (i) => `siglip.encoder.layers.${i}.layer_norm1.weight` }], twoLayerStore, 'tower-config.json');
    } catch (err) {
      expectRefusal(err, { plainNaming: FILES });
      return;
    }
    for (const t of expectedSiglipTensors(cfg)) invariant(t.shape.every((d) => Number.isSafeInteger(d) && d > 0), `${t.name} shape ${t.shape.join('×')}`);
  },
};
