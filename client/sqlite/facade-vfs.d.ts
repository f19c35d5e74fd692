/// <reference types="@journeyapps/wa-sqlite" />
/**
 * Types for wa-sqlite's `FacadeVFS` (the package ships its JavaScript without them): a VFS base
 * class whose `j…` methods take JavaScript values (names, views over the wasm memory) instead
 * of pointers. A method declared `async` may await; every method returns an SQLite result code.
 */
declare module "@journeyapps/wa-sqlite/src/FacadeVFS.js" {
  import * as VFS from "@journeyapps/wa-sqlite/src/VFS.js";

  export class FacadeVFS extends VFS.Base {
    constructor(name: string, module: object);
    jOpen(
      filename: string | null,
      fileId: number,
      flags: number,
      pOutFlags: DataView,
    ): number | Promise<number>;
    jDelete(filename: string, syncDir: number): number | Promise<number>;
    jAccess(filename: string, flags: number, pResOut: DataView): number | Promise<number>;
    jClose(fileId: number): number | Promise<number>;
    jRead(fileId: number, pData: Uint8Array, offset: number): number | Promise<number>;
    jWrite(fileId: number, pData: Uint8Array, offset: number): number | Promise<number>;
    jTruncate(fileId: number, size: number): number | Promise<number>;
    jSync(fileId: number, flags: number): number | Promise<number>;
    jFileSize(fileId: number, pSize: DataView): number | Promise<number>;
    jLock(fileId: number, lockType: number): number | Promise<number>;
    jUnlock(fileId: number, lockType: number): number | Promise<number>;
    jCheckReservedLock(fileId: number, pResOut: DataView): number | Promise<number>;
    jFileControl(fileId: number, op: number, pArg: DataView): number | Promise<number>;
    jSectorSize(fileId: number): number | Promise<number>;
    jDeviceCharacteristics(fileId: number): number | Promise<number>;
  }
}
