import { TensorProto_DataType as DT } from './gen/onnx_pb';

/** Element types the converter writes, named as ONNX Runtime's JS tensors name them. */
export type ElemType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';

export const onnxDataType: Record<ElemType, DT> = {
  float32: DT.FLOAT,
  float16: DT.FLOAT16,
  int64: DT.INT64,
  int32: DT.INT32,
  uint8: DT.UINT8,
  bool: DT.BOOL,
};

export const elemBytes: Record<ElemType, number> = { float32: 4, float16: 2, int64: 8, int32: 4, uint8: 1, bool: 1 };
