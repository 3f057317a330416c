import * as tf from '@tensorflow/tfjs';

/**
 * A small encoder built as the transfer backbones are: per block a 3×3 stride-2 convolution without bias
 * (`conv<i>`), batch normalisation (`bn<i>`) and ReLU (`relu<i>`), then global average pooling to a layer
 * named `features`. Untrained; the caller pretrains it or sets its statistics.
 *
 * @example
 * const model = batchNormEncoder({ filters: [4, 8], seed: 11 });
 */
export function batchNormEncoder(options: { filters: readonly number[]; seed: number; center?: boolean }): tf.Sequential {
  const model = tf.sequential();
  options.filters.forEach((filters, i) => {
    model.add(
      tf.layers.conv2d({
        name: `conv${i + 1}`,
        ...(i === 0 ? { inputShape: [28, 28, 1] } : {}),
        filters,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: options.seed + i }),
      }),
    );
    model.add(tf.layers.batchNormalization({ name: `bn${i + 1}`, ...(options.center === false ? { center: false } : {}) }));
    model.add(tf.layers.reLU({ name: `relu${i + 1}` }));
  });
  model.add(tf.layers.globalAveragePooling2d({ name: 'features' }));
  return model;
}
