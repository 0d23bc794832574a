import { parseQwenVLConfig, checkModelIdentity } from '../../../server/converter/checkpointConfig';
import { checkLayerCounts, expectedTensors, qwenVLLayerCounts } from '../../../server/converter/expectedTensors';
import { expectRefusal, invariant, type FuzzTarget } from '../target';
import { checkTextAndTokens, readParts, twoLayerStore } from './configCommon';
import { scratchDir } from './scratch';

/**
 * Input: config.json, vision_config.json and preprocessor_config.json separated by NUL bytes (a missing part is a
 * missing file), read and validated as the QwenVL checkpoint opener does, then sized into its expected tensors.
 */
let dir = '';
const FILES = ['config.json', 'vision_config.json', 'preprocessor_config.json'];
export const target: FuzzTarget = {
  maxLength: 16 * 1024,
  dictionary: [
    '"model_type"', '"diffusionvl_qwenvl"', '"architectures"', '"text_config"', '"vision_config"', '"hidden_size"', '"num_attention_heads"',
    '"num_key_value_heads"', '"head_dim"', '"rope_scaling"', '"mrope_section"', '"rope_theta"', '"tie_word_embeddings"', '"eos_token_id"',
    '"mask_token_id"', '"pad_token_id"', '"depth"', '"num_heads"', '"fullatt_block_indexes"', '"window_size"', '"spatial_merge_size"',
    '"min_pixels"', '"max_pixels"', '"image_mean"', '"image_std"', '"mm_projector_type"', '"bd3lm_block_size"', 'null', 'true', '[]', '{}', '\u0000',
  ],
  setup() {
    dir = scratchDir('qwenvl-config');
    return Promise.resolve();
  },
  async fuzz(data) {
    let cfg;
    try {
      const [config, visionConfigFile, preprocessor] = await readParts(dir, data, FILES);
      if (!config) throw new Error('config.json: empty input');
      checkModelIdentity(config);
      cfg = parseQwenVLConfig({ config, visionConfigFile, preprocessor, hasLmHead: data.length % 2 === 0 });
    } catch (err) {
      expectRefusal(err, { kinds: ['unsupportedCheckpoint'], plainNaming: [...FILES, 'vision config'] });
      return;
    }
    checkTextAndTokens(cfg.text, cfg.tokens);
    invariant(cfg.pixels.minPixels <= cfg.pixels.maxPixels, 'min_pixels > max_pixels');
    invariant([...cfg.image.std].every((s) => s > 0), 'image_std not positive');
    // Then as the opener goes on, against a checkpoint that stores two layers of each kind.
    try {
      checkLayerCounts(qwenVLLayerCounts(cfg), twoLayerStore, 'config.json');
    } catch (err) {
      expectRefusal(err, { plainNaming: ['config.json'] });
      return;
    }
    for (const t of expectedTensors(cfg)) invariant(t.shape.every((d) => Number.isSafeInteger(d) && d > 0), `${t.name} shape ${t.shape.join('×')}`);
  },
};
