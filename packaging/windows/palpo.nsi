; NSIS installer for Palpo (makensis, Debian package nsis). Built by
; packaging/windows/build.sh, which passes VERSION, WIN_VERSION (a.b.c.d),
; REPO (the repository root) and OUTFILE.
;
; Installs for all users in Program Files with Start-menu and desktop
; shortcuts. The uninstaller keeps the user's data (%AppData%\Palpo: accounts,
; messages, keys, backups) unless the box "Delete my Palpo data" is ticked.

Unicode true
!include "MUI2.nsh"

!ifndef VERSION
  !define VERSION "0.0.0-dev"
!endif
!ifndef WIN_VERSION
  !define WIN_VERSION "0.0.0.0"
!endif
!ifndef REPO
  !define REPO "..\.."
!endif
!ifndef OUTFILE
  !define OUTFILE "palpo-${VERSION}-setup.exe"
!endif

!define APP "Palpo"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Palpo"

Name "${APP}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\${APP}"
InstallDirRegKey HKLM "Software\${APP}" "InstallDir"
RequestExecutionLevel admin
SetCompressor /SOLID lzma

; Version information of the installer itself (Properties > Details).
VIProductVersion "${WIN_VERSION}"
VIFileVersion "${WIN_VERSION}"
VIAddVersionKey "ProductName" "${APP}"
VIAddVersionKey "FileDescription" "${APP} installer"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "CompanyName" "Palpo"
VIAddVersionKey "LegalCopyright" "Palpo developers"

!define MUI_ICON "${REPO}\assets\icons\palpo.ico"
!define MUI_UNICON "${REPO}\assets\icons\palpo.ico"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\palpo.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start Palpo"

!insertmacro MUI_PAGE_LICENSE "${REPO}\LICENSE"
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH

!define MUI_COMPONENTSPAGE_TEXT_TOP "Palpo will be removed from this computer. Your data (accounts, messages, keys and backups in %AppData%\Palpo) is kept unless you tick the box below."
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "English"

; A running Palpo holds palpo.exe open; ask it to go before replacing it.
!macro StopPalpo
  nsExec::Exec 'taskkill /IM palpo.exe'
  Sleep 1500
  nsExec::Exec 'taskkill /F /IM palpo.exe'
!macroend

Section "Palpo" SecMain
  SectionIn RO
  !insertmacro StopPalpo
  SetOutPath "$INSTDIR"
  File "${REPO}\bin\palpo.exe"
  File "/oname=palpo.ico" "${REPO}\assets\icons\palpo.ico"
  File "/oname=LICENSE.txt" "${REPO}\LICENSE"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  ; Shortcuts for every user.
  SetShellVarContext all
  CreateShortcut "$SMPROGRAMS\${APP}.lnk" "$INSTDIR\palpo.exe" "" "$INSTDIR\palpo.ico"
  CreateShortcut "$DESKTOP\${APP}.lnk" "$INSTDIR\palpo.exe" "" "$INSTDIR\palpo.ico"

  WriteRegStr HKLM "Software\${APP}" "InstallDir" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "Palpo"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayIcon" "$INSTDIR\palpo.ico"
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
SectionEnd

Section "un.Palpo (the program)" UnSecMain
  SectionIn RO
  !insertmacro StopPalpo
  Delete "$INSTDIR\palpo.exe"
  Delete "$INSTDIR\palpo.ico"
  Delete "$INSTDIR\LICENSE.txt"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  SetShellVarContext all
  Delete "$SMPROGRAMS\${APP}.lnk"
  Delete "$DESKTOP\${APP}.lnk"
  ; "Start Palpo when I log in" (app/autostart_windows.go) would point at a
  ; missing program.
  DeleteRegValue HKCU "Software\Microsoft\Windows\CurrentVersion\Run" "Palpo"
  DeleteRegKey HKLM "${UNINST_KEY}"
  DeleteRegKey HKLM "Software\${APP}"
SectionEnd

; Unticked by default: the data stays unless the user asks.
Section /o "un.Delete my Palpo data (%AppData%\Palpo)" UnSecData
  SetShellVarContext current
  RMDir /r "$APPDATA\Palpo"
SectionEnd
