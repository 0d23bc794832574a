import { decodeBmp } from '../../../server/engine/image/bmp';
import { MAX_IMAGE_PIXELS } from '../../../server/engine/image/limits';
import { expectRefusal, invariant, type FuzzTarget } from '../target';

/** Input: a BMP file, given to our own decoder (sharp cannot read BMP) with the real pixel limit. */
export const target: FuzzTarget = {
  maxLength: 8 * 1024,
  dictionary: ['BM', '\x28\x00\x00\x00', '\x0c\x00\x00\x00', '\x7c\x00\x00\x00', '\x03\x00\x00\x00', '\x06\x00\x00\x00', '\x01\x00', '\x04\x00', '\x08\x00', '\x10\x00', '\x18\x00', '\x20\x00', '\xff\xff\xff\xff'],
  fuzz(data) {
    let img;
    try {
      img = decodeBmp(data, 'fuzz.bmp', MAX_IMAGE_PIXELS);
    } catch (err) {
      expectRefusal(err, { kinds: ['image'] });
      return;
    }
    invariant(Number.isInteger(img.width) && img.width > 0 && Number.isInteger(img.height) && img.height > 0, `size ${img.width}×${img.height}`);
    invariant(img.data.length === img.width * img.height * img.channels, `${img.data.length} bytes for ${img.width}×${img.height}×${img.channels}`);
  },
};
